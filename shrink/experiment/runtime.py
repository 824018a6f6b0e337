"""The process settings a run depends on (seeds, determinism, threads, device) and the facts
recorded about them (hardware, library versions, git commit)."""

import functools
import json
import os
import platform
import random
import subprocess
from enum import StrEnum
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from shrink.experiment.errors import ConfigError

LIBRARIES = ("shrink", "torch", "torchvision", "numpy", "mlflow", "ray")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA) from ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# cuBLAS's setting for deterministic results: 8 workspaces of 4 MiB (its documented reproducible configuration).
CUBLAS_DETERMINISTIC = ":4096:8"


def prepare_cublas(device: str, deterministic: bool) -> None:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` for a deterministic run on CUDA, unless the environment sets it. Call it
    before the process first uses CUDA (a run's first step, before any pretraining): cuBLAS and torch read
    the setting once, when cuBLAS starts, so setting it later has no effect."""
    if deterministic and device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)


def configure_torch(device: str, threads: int | None, deterministic: bool) -> None:
    """Set torch's thread count (CPU), turn deterministic algorithms on or off for this run, and let cuDNN
    pick its fastest algorithms on CUDA unless deterministic (:func:`prepare_cublas` comes first)."""
    if threads and not device.startswith("cuda"):
        torch.set_num_threads(threads)
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        torch.use_deterministic_algorithms(deterministic)  # the first call imports inductor (~2 s)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = device.startswith("cuda") and not deterministic


class AmpMode(StrEnum):
    """A run's mixed precision, recorded as its ``shrink.amp`` tag (a base's sidecar: ``amp``)."""

    OFF = "off"
    BF16 = "bf16"  # bf16 autocast
    FP16 = "fp16"  # fp16 autocast, the loss scaled by torch.amp.GradScaler


# GPUs from this compute capability on (Ampere) compute bf16 in their tensor cores; older ones emulate it.
BF16_CAPABILITY = (8, 0)


def amp_mode(device_type: str, capability: tuple[int, int] | None) -> AmpMode:
    """The autocast of a run with amp on, on a ``device_type`` device of compute ``capability`` (None on a
    CPU): bf16 on the CPU and on GPUs of compute capability 8.0 and later, else fp16 with loss scaling (bf16
    is emulated there, slower than fp32). bf16 keeps fp32's range, so it needs no loss scaling; fp16 does."""
    if device_type == "cuda" and capability is not None and tuple(capability) < BF16_CAPABILITY:
        return AmpMode.FP16
    return AmpMode.BF16


def device_amp(device: str) -> AmpMode:
    """:func:`amp_mode` of ``device`` (``cpu``, ``cuda``, ``cuda:N``), asking CUDA for its capability."""
    kind = torch.device(device).type
    return amp_mode(kind, torch.cuda.get_device_capability(torch.device(device)) if kind == "cuda" else None)


# Overrides :func:`compile_default` in this process and the processes it starts: ``1`` compiles every run whose
# config leaves ``compile`` unset, ``0`` none (the test suite's compiled pass: ``SHRINK_COMPILE=1 pytest``).
COMPILE_ENV = "SHRINK_COMPILE"


def forced_compile() -> bool | None:
    """``$SHRINK_COMPILE`` read: True for ``1``, False for ``0``, None when unset or empty. Raises
    ``ConfigError`` naming any other value."""
    forced = os.environ.get(COMPILE_ENV, "")
    if forced not in ("", "0", "1"):
        raise ConfigError(f"{COMPILE_ENV} must be 1 (compile), 0 (do not) or unset (the device's default), "
                         f"not {forced!r}")
    return forced == "1" if forced else None


def compile_env() -> dict[str, str]:
    """``$SHRINK_COMPILE`` as environment variables to hand on to other machines' processes (a cluster
    sweep's job and trials): the variable when it is set, else none."""
    return {COMPILE_ENV: os.environ[COMPILE_ENV]} if os.environ.get(COMPILE_ENV) else {}


def compile_default(device: str) -> bool:
    """Whether a run on ``device`` compiles its steps (``torch.compile``) when its config leaves it unset:
    :func:`forced_compile` when set, else on CUDA, where a small net's step is bound by kernel launches, and
    not on a CPU, where compiling a new model costs more than a short trial saves (figures in the README,
    section "Compiled steps")."""
    forced = forced_compile()
    return torch.device(device).type == "cuda" if forced is None else forced


def compile_mode(device_type: str) -> str:
    """``torch.compile``'s mode for a run's steps on a ``device_type`` device: CUDA graphs on CUDA
    (``reduce-overhead``: a step replays as one graph launch; the step is sync-free), inductor's default
    elsewhere."""
    return "reduce-overhead" if device_type == "cuda" else "default"


def default_device() -> str:
    """``cuda`` when a GPU is present, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def hardware(device: str) -> str:
    """The GPU's name, or the CPU's model and torch's thread count."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{_cpu_model()} (torch threads: {torch.get_num_threads()})"


@functools.cache
def versions() -> str:
    """Installed versions of Python and the libraries a result depends on, as JSON."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return json.dumps(found, sort_keys=True)


@functools.cache
def git_commit() -> str | None:
    """The commit of the shrink source tree (``+dirty`` with local changes), or None outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


@functools.cache
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
