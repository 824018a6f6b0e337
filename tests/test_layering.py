"""The import rules of docs/ARCHITECTURE.md, checked by importing every module of each layer in a fresh
interpreter and naming the first module that brings in what its layer must not."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABOVE_EXPERIMENT = ("shrink.orchestrator", "shrink.report", "shrink.cli")

# Layers in dependency order, each with what none of its modules may import: one interpreter imports them
# in this order, so a module is blamed for what it brings in itself (nothing a later layer may import is
# allowed to an earlier one).
CORE = [
    *((package, ("ray", "mlflow", "shrink.experiment", *ABOVE_EXPERIMENT))
      for package in ("shrink.pruning", "shrink.metrics", "shrink.models", "shrink.datasets")),
    ("shrink.experiment", ("ray", *ABOVE_EXPERIMENT)),
]
# What the command line and the report load, which must come without torch (and the report without Ray or
# the orchestrator): shrink.experiment and shrink.pruning import their names lazily for this.
TORCH_FREE = [
    *((module, ("torch", "ray", "mlflow")) for module in (
        "shrink.cache", "shrink.pruning.names", "shrink.experiment.recording", "shrink.experiment.sources",
        "shrink.experiment.tracking", "shrink.cli")),
    ("shrink.report", ("torch", "ray", "shrink.orchestrator")),
]

PROGRAM = """
import importlib, json, pkgutil, sys

def modules(package):
    root = importlib.import_module(package)
    subs = pkgutil.walk_packages(root.__path__, package + ".") if hasattr(root, "__path__") else ()
    return [package, *sorted(info.name for info in subs)]

def violation(steps):
    for package, forbidden in steps:
        for name in modules(package):
            importlib.import_module(name)
            found = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))
            if found:
                return [name, found[:5]]
    return None

print(json.dumps(violation(json.loads(sys.argv[1]))))
"""


def first_violation(steps, cwd: Path = ROOT):
    """``[module, [forbidden modules loaded]]`` for the first module of ``steps`` (``(package, forbidden)``
    pairs, imported in order in a fresh interpreter) that imports what its package must not, or None."""
    done = subprocess.run([sys.executable, "-c", PROGRAM, json.dumps(steps)], cwd=cwd, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_core_layers_import_only_downwards_and_experiment_never_imports_ray():
    assert first_violation(CORE) is None


def test_the_command_line_and_the_report_load_without_torch_or_ray():
    assert first_violation(TORCH_FREE) is None


def test_the_check_names_a_layer_module_that_imports_ray(tmp_path):
    """The check itself can fail: a module of an experiment-like package that imports Ray is named."""
    fake = tmp_path / "shrink_fake"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "trial.py").write_text("")
    (fake / "uses_ray.py").write_text("import ray  # noqa: F401\n")
    module, found = first_violation([["shrink_fake", ["ray"]]], cwd=tmp_path)
    assert module == "shrink_fake.uses_ray" and "ray" in found
