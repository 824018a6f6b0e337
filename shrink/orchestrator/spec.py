"""The sweep file: plain data describing a grid of trials, validated completely before anything starts.

A sweep file is YAML. ``dataset``, ``models``, ``strategies``, ``compressions`` and ``seeds`` are
required; everything else has a default::

    name: demo                       # parent MLflow run and Ray storage folder (default: file name)
    dataset: fashion-mnist
    models: [small-mlp]
    strategies: [global-magnitude, random]
    methods: [my-method]             # the proposed methods among the strategies, whose matched baselines
                                     # the checklist asks for (default: every strategy that is not a
                                     # built-in baseline, see shrink.pruning.BASELINES; [] for none)
    compressions: [1, 2, 4, 8]       # ratios >= 1, reachable by every model; 1 is the dense control, trained
                                     # once per model, base and seed and counted for every strategy
    seeds: [0, 1, 2]
    pretrain: {epochs: 10, seed: 0}  # one base per model; seed: per-trial trains one per trial seed
    base: pretrain                   # or torchvision[:<WEIGHTS>], or a state-dict file; or a mapping by
                                     # model ({resnet18: torchvision:IMAGENET1K_V1}, others: pretrain)
    # bases:                         # instead of base: several named bases, crossed with the grid
    #   - {name: lr-high, lr: 0.1}   #   pretrained (seed, epochs and recipe fields may be set: lr, ...)
    #   - {name: lr-low, lr: 0.01, seed: 1}
    #   - {name: published, base: torchvision}   # or any base: value
    finetune: {epochs: 2, patience: 1, lr: 1.0e-3}   # any fine-tuning field, the rest from presets
    resources: {cpus: 1, gpus: 0}    # per trial; a fraction of a GPU lets trials share one
    # resources: {workers: 8, cpus: 8, gpus: 1}   # one trial = 8 data-parallel workers (Ray Train, DDP),
    #                                 # each with 8 CPUs and 1 GPU; finetune.batch_size is their global batch
    max_concurrent_trials: 4         # default: as many as the resources allow
    retries: 2                       # restarts from the last checkpoint when a worker dies
    tracking_uri: sqlite:////abs/mlflow.db   # default: $MLFLOW_TRACKING_URI, else ./mlflow.db
    experiment: shrink               # MLflow experiment
    storage_path: /shared/ray        # Ray Tune storage; default $SHRINK_STORAGE, else ./shrink-out/ray
    pip: [my-pruning-methods]        # --cluster only: installed for the job on every node (see below)
    data_root: /data                 # and any other TrialConfig field shared by every trial

``pip`` names what the cluster installs for a ``--cluster`` sweep (Ray's ``pip`` runtime
environment: a virtualenv per node on top of Ray's Python, made before the job's driver starts):
requirement strings, so also ``git+https://...`` or a wheel's path on a folder every node mounts; or
``{packages: [...], install_options: [--no-build-isolation, ...]}`` for pip's options (default: Ray's).
Use it for the packages that register your strategies (entry-point group ``shrink.strategies``):
here, install them yourself, since validation needs them here too.

Errors are :class:`SpecError`, one line naming the file, the key, what is wrong and what is allowed.
"""

import dataclasses
import itertools
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from pathlib import Path

import yaml

from shrink import datasets
from shrink.experiment import TrialConfig
from shrink.experiment.bases import BaseRequest
from shrink.experiment.config import UnknownName, check_names
from shrink.experiment.errors import ConfigError
from shrink.experiment.preflight import preflight
from shrink.experiment.sources import PRETRAIN, BaseSource
from shrink.experiment.tracking import DEFAULT_EXPERIMENT
from shrink.pruning.names import MatchedName, is_baseline

PRESETS_DIR = Path(__file__).parent / "presets"
# Set in the environment of a sweep submitted with ``--cluster`` (the Ray Job's driver and workers).
CLUSTER_JOB_ENV = "SHRINK_CLUSTER_JOB"
DEFAULT_PRESET = "demo"
PER_TRIAL = "per-trial"
CONTROL = "control"  # how --dry-run and the progress lines name a shared dense control

_SWEPT = {"model": "models", "strategy": "strategies", "compression": "compressions", "seed": "seeds"}
_SET_BY_SWEEP = {
    "base", "base_name", "base_path", "base_sha256", "device", "threads", "workers", "tracking_uri",
    "experiment_name", "parent_run_id", "sweep", "reference_run", "control_for",
}
_SPEC_KEYS = {
    "name", "dataset", "models", "strategies", "methods", "compressions", "seeds", "pretrain", "base", "bases",
    "finetune",
    "resources", "max_concurrent_trials", "retries", "tracking_uri", "experiment", "storage_path", "pip",
}
_REQUIRED = ("dataset", "models", "strategies", "compressions", "seeds")
# Trial config fields a sweep file may give once for every trial.
_SHARED_KEYS = {f.name for f in dataclasses.fields(TrialConfig)} - set(_SWEPT) - _SET_BY_SWEEP
# The sweep file's key for each trial config field it sets differently (the rest are the same names).
_SWEEP_KEY = {**_SWEPT, "workers": "resources.workers"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class SpecError(ValueError):
    """A sweep file is invalid; the message is one line saying what is wrong and what is allowed."""


@dataclass(frozen=True)
class Resources:
    """What one trial holds while it runs: ``workers`` processes (data-parallel when more than one), each
    with ``cpus`` CPUs and ``gpus`` GPUs."""

    cpus: float = 1.0
    gpus: float = 0.0
    workers: int = 1

    @property
    def data_parallel(self) -> bool:
        """Whether a trial runs as several Ray Train workers (DDP) rather than one Tune process."""
        return self.workers > 1

    def for_tune(self) -> dict[str, float]:
        """The resource request in the form ``tune.with_resources`` takes. A data-parallel trial's Tune
        process only starts and waits for its Ray Train workers, which request their own resources: it
        holds no CPU (Ray needs some resource in the request: one MiB of memory)."""
        if self.data_parallel:
            return {"cpu": 0, "memory": 2**20}
        return {"cpu": self.cpus, "gpu": self.gpus}

    def worker_slots(self, node: Mapping[str, float]) -> int:
        """How many workers fit on one node with ``node`` resources (``{"CPU": n, "GPU": g}``)."""
        slots = int(node.get("CPU", 0) // self.cpus)
        if self.gpus:
            slots = min(slots, int(node.get("GPU", 0) // self.gpus))
        return slots

    def describe(self) -> str:
        """``1 CPU, 0 GPU`` for one process, ``2 data-parallel workers x (...)`` for a data-parallel trial."""
        one = f"{self.cpus:g} CPU, {self.gpus:g} GPU"
        if not self.data_parallel:
            return one
        backend = "NCCL" if self.gpus else "gloo"
        return (f"{self.workers} data-parallel workers x ({one}) = {self.workers * self.cpus:g} CPU, "
                f"{self.workers * self.gpus:g} GPU, placed by Ray Train (may span nodes; DDP over {backend})")


@dataclass(frozen=True)
class Pip:
    """What a ``--cluster`` sweep installs on the cluster: pip requirements and pip's options."""

    packages: tuple[str, ...] = ()
    install_options: tuple[str, ...] | None = None  # None: Ray's defaults

    def runtime_env(self) -> dict | None:
        """The ``pip`` field of a Ray runtime environment; None when there is nothing to install."""
        if not self.packages:
            return None
        env = {"packages": list(self.packages)}
        if self.install_options is not None:
            env["pip_install_options"] = list(self.install_options)
        return env


class BaseKey(NamedTuple):
    """Which base a trial prunes: its model, the base seed (None for a base trained elsewhere, one per model
    whatever the seeds) and the name of the sweep's base setting (None without ``bases:``)."""

    model: str
    seed: int | None
    name: str | None = None


class GridPoint(NamedTuple):
    """One point of the grid, or one trial that runs: a shared dense control runs as ``strategy`` and counts as
    the compression-1 point of every strategy of ``control_for``."""

    model: str
    strategy: str
    compression: float
    seed: int
    base: str | None = None  # the name of its base setting (``bases:``), None without
    control_for: tuple[str, ...] = ()  # a shared dense control's strategies; () for every other trial


@dataclass(frozen=True)
class SweepBase:
    """One base setting, crossed with the grid: ``source`` maps each model to its ``base:`` value; a
    pretrained base has a ``seed`` (an int, or PER_TRIAL: each trial's own), the recipe's ``epochs`` (None:
    the preset's) and recipe ``overrides`` (``(field, value)`` pairs). ``name`` is what every trial records
    (``base_name``); None for a sweep without ``bases:``, whose one setting is ``base:`` and ``pretrain:``."""

    name: str | None
    source: Mapping[str, str]
    seed: int | str = 0
    epochs: int | None = None
    overrides: tuple[tuple[str, object], ...] = ()

    def source_of(self, model: str) -> BaseSource:
        return BaseSource.parse(self.source.get(model, PRETRAIN))

    def key(self, model: str, seed: int) -> BaseKey:
        if self.source_of(model).trained_elsewhere:
            return BaseKey(model, None, self.name)
        return BaseKey(model, seed if self.seed == PER_TRIAL else self.seed, self.name)

    def describe(self, model: str) -> str:
        source = self.source_of(model)
        if source.trained_elsewhere:
            return str(source)
        seed = "per-trial seeds" if self.seed == PER_TRIAL else f"seed {self.seed}"
        return ", ".join([f"pretrain {seed}", f"epochs {self.epochs or 'preset'}",
                          *(f"{name} {value}" for name, value in self.overrides)])


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: the grid, the trial every grid point varies, and how to run it."""

    name: str
    dataset: str
    models: tuple[str, ...]
    strategies: tuple[str, ...]
    compressions: tuple[float, ...]
    seeds: tuple[int, ...]
    # The grid's first trial: the settings every trial shares (fine-tuning, carve-out, data root, device,
    # threads, workers); :meth:`trial_configs` replaces the swept fields, the base and the recording ones.
    template: TrialConfig
    base_settings: tuple[SweepBase, ...] = (SweepBase(None, {}),)  # crossed with the grid
    resources: Resources = Resources()
    max_concurrent_trials: int | None = None
    retries: int = 2
    tracking_uri: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    storage_path: str | None = None
    pip: Pip = Pip()
    text: str = ""  # the YAML it was read from, logged as the parent run's artifact
    methods: tuple[str, ...] = ()  # the proposed methods among the strategies (canonical names)

    @property
    def size(self) -> int:
        """Number of trials that run (:meth:`trials`; the grid has a point more per strategy but one at
        compression 1)."""
        return len(self.trials())

    def base_setting(self, name: str | None = None) -> SweepBase:
        """The base setting called ``name`` (None: the one of a sweep without ``bases:``)."""
        return next(setting for setting in self.base_settings if setting.name == name)

    def base_source(self, model: str, name: str | None = None) -> BaseSource:
        """Where ``model``'s base of setting ``name`` comes from (pretrain unless ``base:`` names the model)."""
        return self.base_setting(name).source_of(model)

    def base_request(self, key: BaseKey) -> BaseRequest:
        """The base a key of :meth:`bases` names."""
        setting = self.base_setting(key.name)
        trial = dataclasses.replace(self.template, model=key.model, base=str(setting.source_of(key.model)))
        return BaseRequest.for_trial(trial, epochs=setting.epochs, seed=key.seed or 0, overrides=setting.overrides)

    def bases(self) -> list[BaseKey]:
        """The bases to make (pretrain, or take from torchvision or a file) before fan-out, in grid order."""
        return list(dict.fromkeys(setting.key(m, s) for m in self.models for setting in self.base_settings
                                  for s in self.seeds))

    def grid(self) -> list[GridPoint]:
        """Every trial of the sweep, model-major, then by base setting, strategy, compression and seed."""
        return [GridPoint(model, strategy, compression, seed, setting.name)
                for model, setting, strategy, compression, seed in itertools.product(
                    self.models, self.base_settings, self.strategies, self.compressions, self.seeds)]

    def trials(self) -> list[GridPoint]:
        """The trials that run, in :meth:`grid` order: at compression 1 nothing is pruned, so the points of
        every strategy with the same model, base and seed are one trial, the shared dense control (at the
        first of them), which runs as :meth:`control_strategy` and counts for each strategy."""
        trials, controls = [], set()
        for point in self.grid():
            if point.compression != 1:
                trials.append(point)
            elif (key := (point.model, point.base, point.seed)) not in controls:
                controls.add(key)
                trials.append(point._replace(strategy=self.control_strategy(), control_for=self.strategies))
        return trials

    def control_strategy(self) -> str:
        """The strategy a shared dense control runs as: the first that follows no reference (all prune
        nothing at compression 1; a reference is needed only where pruning happens)."""
        return next(s for s in self.strategies if self.reference_of(s) is None)

    def reference_of(self, strategy: str) -> str | None:
        """The strategy whose own trials a matched ``strategy`` follows under a schedule: it keeps, at every
        round, the per-layer counts that trial recorded, so it runs after it (a second phase of the sweep).
        None for other strategies and for one-shot pruning, where the dense base gives the same counts."""
        matched = MatchedName.parse(strategy)
        if matched is None or self.template.schedule == "one-shot":
            return None
        return matched.reference

    def trial_configs(self, bases: Mapping, *, tracking_uri: str, parent_run_id: str | None) -> list[TrialConfig]:
        """Expand the grid into trial configs, in :meth:`grid` order.

        ``bases`` maps each pair of :meth:`bases` to its ``BaseCheckpoint`` (``path``, ``sha256``).
        """
        configs = []
        for point in self.trials():
            setting = self.base_setting(point.base)
            base = bases[setting.key(point.model, point.seed)]
            configs.append(dataclasses.replace(
                self.template, model=point.model, strategy=point.strategy, compression=point.compression,
                seed=point.seed, base=str(setting.source_of(point.model)), base_name=point.base,
                base_path=str(base.path), base_sha256=base.sha256, tracking_uri=tracking_uri,
                experiment_name=self.experiment, parent_run_id=parent_run_id, sweep=self.name,
                control_for=point.control_for))
        return configs

    def describe(self) -> str:
        """The grid, its bases and each trial's resources, one trial per table row."""
        named = self.base_settings[0].name is not None
        axes = " x ".join(f"{len(values)} {one if len(values) == 1 else many}" for one, many, values in (
            ("model", "models", self.models), *([("base", "bases", self.base_settings)] if named else []),
            ("strategy", "strategies", self.strategies), ("compression", "compressions", self.compressions),
            ("seed", "seeds", self.seeds)))
        trials = self.trials()
        header = ("#", "model", *(["base"] if named else []), "strategy", "compression", "seed")
        rows = [header] + [(str(i), p.model, *([p.base] if named else []),
                            f"{CONTROL} ({p.strategy})" if p.control_for else p.strategy, f"{p.compression:g}",
                            str(p.seed)) for i, p in enumerate(trials, start=1)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        controls = sum(1 for point in trials if point.control_for)
        return "\n".join([
            f"sweep {self.name}: {len(trials)} trials on {self.dataset} ({axes})",
            *([f"dense controls: {controls} trials at compression 1, one per model, base and seed, each counted "
               f"for all {len(self.strategies)} strategies (the report's {len(self.grid())} grid points)"]
              if controls and len(self.strategies) > 1 else []),
            "bases: " + self.describe_bases(),
            f"each trial: {self.resources.describe()}; retries {self.retries}",
            "methods: " + (", ".join(self.methods) + " (the checklist asks for their matched baselines)"
                           if self.methods else "none (no matched baselines needed)"),
            *([f"then, after their references: {followers} trials of "
               + ", ".join(s for s in self.strategies if self.reference_of(s))
               + f" (under schedule {self.template.schedule}, each keeps its reference trial's per-layer counts)"]
              if (followers := sum(1 for point in trials if self.reference_of(point.strategy))) else []),
            *([f"installed on the cluster (pip): {', '.join(self.pip.packages)}"] if self.pip.packages else []),
            *("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows),
        ])

    def describe_bases(self) -> str:
        """Each base before fan-out: ``small-mlp seed 0 (pretrain epochs: 3)``; with ``bases:``, each named
        setting's (``lr-low: small-mlp pretrain seed 1, epochs preset, lr 0.01``)."""
        if self.base_settings[0].name is None:
            keys = self.bases()
            return (", ".join(f"{k.model} seed {k.seed}" if k.seed is not None else f"{k.model} {self.base_source(k.model)}"
                              for k in keys)
                    + (f" (pretrain epochs: {self.base_settings[0].epochs or 'preset'})"
                       if any(k.seed is not None for k in keys) else ""))
        return "; ".join(f"{setting.name}: " + ", ".join(f"{model} {setting.describe(model)}" for model in self.models)
                         for setting in self.base_settings)

    def resolved_storage_path(self) -> Path:
        """Absolute folder holding Ray Tune's state of every sweep (the sweep's own is ``/<name>``)."""
        raw = self.storage_path or os.environ.get("SHRINK_STORAGE") or "shrink-out/ray"
        if "://" in raw:
            raise SpecError(f"storage_path: {raw} is a URI; give a folder (on a cluster, one that every node "
                            "mounts: trials share their base checkpoints as files)")
        return Path(raw).expanduser().resolve()


def trial_label(config: TrialConfig) -> str:
    """Short human name of one trial: ``small-mlp/global-magnitude/x16/s1`` (``.../s1@<base name>`` with
    named bases; ``small-mlp/control/x1/s1`` for a shared dense control)."""
    base = f"@{config.base_name}" if config.base_name else ""
    strategy = CONTROL if config.control_for else config.strategy
    return f"{config.model}/{strategy}/x{config.compression:g}/s{config.seed}{base}"


def presets() -> list[str]:
    """Names of the built-in sweep files (``--preset``)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_spec(path: str | Path | None = None, *, preset: str | None = None) -> SweepSpec:
    """Read and validate a sweep file, or a preset by name; neither gives the demo preset."""
    if path is not None and preset is not None:
        raise SpecError("give a sweep file or --preset, not both")
    if path is None:
        preset = preset or DEFAULT_PRESET
        if preset not in presets():
            raise SpecError(f"unknown preset {preset!r}; presets: {', '.join(presets())}")
        path = PRESETS_DIR / f"{preset}.yaml"
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError(f"cannot read sweep file {path}: {error.strerror}") from None
    return parse_spec(text, origin=path.name, default_name=path.stem)


def parse_spec(text: str, *, origin: str = "<sweep>", default_name: str = "sweep") -> SweepSpec:
    """Validate a sweep file's text completely (names, ranges, reachable compressions); see module doc."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{origin}: malformed YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: a sweep file is a YAML mapping of keys (dataset, models, ...)")
    return _Reader(raw, origin).spec(text, default_name)


def check_data(spec: SweepSpec) -> None:
    """Fail unless the dataset's files are where the trials will look for them, and every base passes the
    checks that need no training (``BaseRequest.check``: one taken from torchvision or a file fits the data's
    class count, keys and shapes, its weights cached or reachable)."""
    try:
        datasets.locate(spec.dataset, root=spec.template.data_root)
    except datasets.DatasetNotFound as error:
        raise SpecError(str(error)) from None
    for key in spec.bases():
        try:
            spec.base_request(key).check()
        except ConfigError as error:
            raise SpecError(str(error)) from None


def check_resources(spec: SweepSpec, available: Mapping[str, float], where: str,
                    nodes: list[Mapping[str, float]] | None = None) -> None:
    """Fail unless one trial's resources fit into ``available`` (``{"CPU": n, "GPU": g}``) on ``where``;
    a data-parallel trial's workers must also fit onto ``nodes`` (each node's resources; default: one node
    holding ``available``), since a worker cannot span nodes."""
    cpus, gpus = available.get("CPU", 0), available.get("GPU", 0)
    if spec.resources.cpus > cpus:
        raise SpecError(
            f"resources.cpus: a trial asks for {spec.resources.cpus:g} CPUs but {where} has {cpus:g}; "
            f"ask for at most {cpus:g}"
        )
    if spec.resources.gpus > gpus:
        raise SpecError(
            f"resources.gpus: a trial asks for {spec.resources.gpus:g} GPUs but {where} has {gpus:g}; "
            + ("set gpus: 0 to train on CPUs" if gpus == 0 else f"ask for at most {gpus:g}")
        )
    resources = spec.resources
    if resources.data_parallel:
        placeable = sum(resources.worker_slots(node) for node in (nodes if nodes is not None else [available]))
        if placeable < resources.workers:
            raise SpecError(
                f"resources.workers: a trial asks for {resources.workers} workers of {resources.cpus:g} CPUs and "
                f"{resources.gpus:g} GPUs each, but {where} can place at most {placeable} of them "
                f"({cpus:g} CPUs, {gpus:g} GPUs on {len(nodes) if nodes is not None else 1} node(s)); "
                f"ask for at most {placeable} workers or fewer resources per worker"
            )


def local_resources() -> dict[str, float]:
    """CPUs and GPUs of this machine, in Ray's resource names."""
    import torch

    return {"CPU": float(len(os.sched_getaffinity(0))), "GPU": float(torch.cuda.device_count())}


def absolute_tracking_uri(uri: str) -> str:
    """Make a relative ``sqlite:///file.db`` absolute: trials run in other working directories."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


class _Reader:
    """Reads one raw mapping key by key, each error naming the file and the key."""

    def __init__(self, raw: dict, origin: str):
        self.raw, self.origin = raw, origin

    def fail(self, key: str, problem: str) -> SpecError:
        return SpecError(f"{self.origin}: {key}: {problem}")

    def spec(self, text: str, default_name: str) -> SweepSpec:
        self.check_keys()
        name = self.raw.get("name", default_name)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise self.fail("name", f"{name!r} is not a name (letters, digits, '_', '.', '-')")
        dataset = self.dataset()
        model_names = self.names("models", self.model)
        strategies = self.names("strategies", self.strategy)
        compressions = self.numbers("compressions")
        seeds = self.seeds()
        resources = self.resources()
        epochs, base_seed = self.pretrain()
        spec = SweepSpec(
            name=name,
            dataset=dataset,
            models=model_names,
            strategies=strategies,
            compressions=compressions,
            seeds=seeds,
            template=self.template(dataset, model_names[0], strategies[0], compressions[0], seeds[0], resources),
            base_settings=self.base_settings(model_names, epochs, base_seed),
            resources=resources,
            max_concurrent_trials=self.optional_int("max_concurrent_trials", minimum=1),
            retries=self.optional_int("retries", minimum=0, default=2),
            tracking_uri=self.optional_str("tracking_uri"),
            experiment=self.optional_str("experiment") or DEFAULT_EXPERIMENT,
            storage_path=self.optional_str("storage_path"),
            pip=self.pip(),
            text=text,
            methods=self.methods(strategies),
        )
        self.preflight(spec)
        return spec

    def check_keys(self) -> None:
        """Every key is a sweep key or a trial config field the sweep does not set; the required ones are there."""
        for key in self.raw:
            if key in _SPEC_KEYS:
                continue
            if key in _SWEPT:
                raise self.fail(key, f"is swept: list the values under {_SWEPT[key]!r}")
            if key == "workers":
                raise self.fail(key, f"is set under resources: resources: {{workers: {self.raw[key]}, cpus: C, gpus: G}}")
            if key in _SET_BY_SWEEP:
                raise self.fail(key, "is set by the sweep for every trial and cannot be given")
            if key not in _SHARED_KEYS:
                allowed = ", ".join(sorted(_SPEC_KEYS | _SHARED_KEYS))
                raise self.fail(str(key), f"unknown key; known keys: {allowed}")
        missing = [k for k in _REQUIRED if k not in self.raw]
        if missing:
            raise SpecError(f"{self.origin}: missing required keys: {', '.join(missing)}")

    # -- the grid --------------------------------------------------------------------------------

    def dataset(self) -> str:
        name = self.raw["dataset"]
        self.check_name("dataset", dataset=name)
        return name

    def model(self, name: str) -> str:
        self.check_name("models", model=name)
        return name

    def strategy(self, name: str, key: str = "strategies") -> str:
        return self.check_name(key, strategy=name)

    def check_name(self, key: str, **name) -> str | None:
        """``check_names`` for one name, its error naming ``key``."""
        try:
            return check_names(**name)
        except UnknownName as error:
            hint = ""
            if error.kind == "strategy" and os.environ.get(CLUSTER_JOB_ENV):  # known where it was submitted
                hint = (f"; this sweep runs as a Ray Job on the cluster, where {name['strategy']!r} is not "
                        "registered: list the package that registers it under `pip:` in the sweep file")
            raise self.fail(key, f"{error}{hint}") from None

    def names(self, key: str, resolve) -> tuple[str, ...]:
        values = self.raw[key]
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise self.fail(key, f"{values!r} is not a non-empty list of names")
        resolved = tuple(resolve(v) for v in values)
        self.unique(key, resolved)
        return resolved

    def methods(self, strategies: tuple[str, ...]) -> tuple[str, ...]:
        """The proposed methods: listed ones among ``strategies``, else the strategies that are not baselines."""
        if "methods" not in self.raw:
            return tuple(s for s in strategies if not is_baseline(s))
        values = self.raw["methods"]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise self.fail("methods", f"{values!r} is not a list of strategy names ([] for none)")
        methods = tuple(self.strategy(v, key="methods") for v in values)
        self.unique("methods", methods)
        for method in methods:
            matched = MatchedName.parse(method)
            if matched is not None:
                raise self.fail("methods", f"{method} is a baseline for {matched.reference}, not a proposed method")
            if method not in strategies:
                raise self.fail("methods", f"{method} is not among the strategies ({', '.join(strategies)}); "
                                           "methods names which of them are proposed")
        return methods

    def numbers(self, key: str) -> tuple[float, ...]:
        values = self.raw[key]
        if not isinstance(values, list) or not values:
            raise self.fail(key, f"{values!r} is not a non-empty list of numbers")
        for value in values:
            if not _is_number(value) or not math.isfinite(value) or value < 1:
                raise self.fail(key, f"{value!r} is not a compression ratio; ratios are numbers >= 1 (1 = dense)")
        self.unique(key, values)
        return tuple(float(v) for v in values)

    def seeds(self) -> tuple[int, ...]:
        values = self.raw["seeds"]
        if not isinstance(values, list) or not values or not all(_is_int(v, minimum=0) for v in values):
            raise self.fail("seeds", f"{values!r} is not a non-empty list of whole numbers >= 0")
        self.unique("seeds", values)
        return tuple(values)

    def unique(self, key: str, values) -> None:
        seen = set()
        for value in values:
            if value in seen:
                raise self.fail(key, f"{value!r} is listed twice")
            seen.add(value)

    def base_settings(self, model_names: tuple[str, ...], epochs: int | None,
                      seed: int | str) -> tuple[SweepBase, ...]:
        """``bases:``, the named base settings crossed with the grid, else the one of ``base:`` and ``pretrain:``."""
        if "bases" not in self.raw:
            return (SweepBase(None, self.base("base", self.raw.get("base", PRETRAIN), model_names), seed, epochs),)
        if "base" in self.raw:
            raise self.fail("base", "is given by each entry of bases: (give one or the other)")
        if "seed" in self.mapping("pretrain"):
            raise self.fail("pretrain.seed", "is given by each entry of bases: (give one or the other)")
        entries = self.raw["bases"]
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise self.fail("bases", f"{entries!r} is not a non-empty list of mappings ({{name: ..., base: ...}})")
        settings = tuple(self.named_base(f"bases[{i}]", entry, model_names, epochs) for i, entry in enumerate(entries))
        self.unique("bases", [setting.name for setting in settings])
        return settings

    def named_base(self, key: str, entry: dict, model_names: tuple[str, ...], epochs: int | None) -> SweepBase:
        """One entry of ``bases:``: a name, a ``base:`` value and, for a pretrained base, its seed, epochs and
        recipe fields (checked against the dataset family's recipe)."""
        from shrink.experiment.recipes import recipe_for

        entry = dict(entry)
        name = entry.pop("name", None)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise self.fail(f"{key}.name", f"{name!r} is not a name (letters, digits, '_', '.', '-')")
        source = self.base(f"{key}.base", entry.pop("base", PRETRAIN), model_names)
        seed, epochs = entry.pop("seed", 0), entry.pop("epochs", epochs)
        overrides = tuple(sorted(entry.items()))
        if (seed or overrides) and any(BaseSource.parse(v).trained_elsewhere for v in source.values()):
            raise self.fail(key, f"base {name!r} is trained elsewhere: seed and recipe fields apply to pretrain only")
        if not _is_int(seed, minimum=0):
            raise self.fail(f"{key}.seed", f"{seed!r} is not a whole number >= 0")
        try:
            recipe_for(datasets.info(self.raw["dataset"]).family, epochs, overrides)
        except ConfigError as error:
            raise self.fail(f"{key}.{error.key}", str(error)) from None
        return SweepBase(name, source, seed, epochs, overrides)

    def base(self, key: str, raw, model_names: tuple[str, ...]) -> dict[str, str]:
        """A ``base:`` value, one for every model or a mapping by model (checked for each model by :meth:`preflight`)."""
        if isinstance(raw, dict):
            unknown = sorted(set(raw) - set(model_names), key=str)
            if unknown:
                raise self.fail(key, f"{unknown[0]!r} is not one of the sweep's models ({', '.join(model_names)})")
            values = {model: raw.get(model, PRETRAIN) for model in model_names}
        else:
            values = dict.fromkeys(model_names, raw)
        try:
            return {model: str(BaseSource.parse(value)) for model, value in values.items()}
        except ConfigError as error:
            raise self.trial_error(error) from None

    # -- settings --------------------------------------------------------------------------------

    def mapping(self, key: str) -> dict:
        value = self.raw.get(key) or {}
        if not isinstance(value, dict):
            raise self.fail(key, f"{value!r} is not a mapping of settings")
        return value

    def pretrain(self) -> tuple[int | None, int | str]:
        """``pretrain: {epochs, seed}``: the recipe's epochs (None: the preset's) and the base seed."""
        pretrain = self.mapping("pretrain")
        unknown = set(pretrain) - {"epochs", "seed"}
        if unknown:
            raise self.fail("pretrain", f"unknown key {sorted(unknown)[0]!r}; known keys: epochs, seed")
        epochs = pretrain.get("epochs")
        if epochs is not None and not _is_int(epochs, minimum=1):
            raise self.fail("pretrain.epochs", f"{epochs!r} is not a whole number >= 1")
        base_seed = pretrain.get("seed", 0)
        if base_seed != PER_TRIAL and not _is_int(base_seed, minimum=0):
            raise self.fail("pretrain.seed", f"{base_seed!r} is neither a whole number >= 0 nor {PER_TRIAL!r}")
        return epochs, base_seed

    def template(self, dataset: str, model: str, strategy: str, compression: float, seed: int,
                 resources: Resources) -> TrialConfig:
        """The grid's first trial, with every shared field the file gives and the sweep's device, threads
        and workers (a wrong shared field fails now, not in a worker)."""
        shared = {k: self.raw[k] for k in self.raw if k in _SHARED_KEYS}
        if isinstance(shared.get("data_root"), str):  # trials run in other working directories
            shared["data_root"] = str(Path(shared["data_root"]).expanduser().resolve())
        finetune = self.mapping("finetune")
        try:
            return TrialConfig.from_dict({
                **shared, **({"finetune": finetune} if finetune else {}), "dataset": dataset, "model": model,
                "strategy": strategy, "compression": compression, "seed": seed,
                "device": "cuda" if resources.gpus else "cpu", "threads": max(1, int(resources.cpus)),
                "workers": resources.workers})
        except ConfigError as error:
            raise self.trial_error(error) from None
        except TypeError as error:
            raise SpecError(f"{self.origin}: {error}") from None

    def resources(self) -> Resources:
        raw = self.mapping("resources")
        unknown = set(raw) - {"workers", "cpus", "gpus"}
        if unknown:
            raise self.fail("resources", f"unknown key {sorted(unknown)[0]!r}; known keys: workers, cpus, gpus")
        workers, cpus, gpus = raw.get("workers", 1), raw.get("cpus", 1), raw.get("gpus", 0)
        if not _is_int(workers, minimum=1):
            raise self.fail("resources.workers", f"{workers!r} is not a number of workers: a whole number >= 1")
        if not _is_number(cpus) or cpus <= 0:
            raise self.fail("resources.cpus", f"{cpus!r} is not a number of CPUs > 0")
        if not _is_number(gpus) or gpus < 0 or (gpus > 1 and gpus != int(gpus)):
            raise self.fail(
                "resources.gpus", f"{gpus!r} is not a GPU share: 0, a fraction below 1, or a whole number"
            )
        if workers > 1 and gpus and gpus != int(gpus):
            raise self.fail("resources.gpus", f"{gpus!r}: each of several workers needs whole GPUs (NCCL "
                            "cannot share one GPU between the ranks of a trial)")
        return Resources(cpus=float(cpus), gpus=float(gpus), workers=workers)

    def pip(self) -> Pip:
        raw = self.raw.get("pip")
        if raw is None:
            return Pip()
        options = None
        if isinstance(raw, dict):
            unknown = set(raw) - {"packages", "install_options"}
            if unknown:
                raise self.fail("pip", f"unknown key {sorted(unknown)[0]!r}; known keys: packages, install_options")
            if "packages" not in raw:
                raise self.fail("pip", "a mapping needs packages: [requirement, ...]")
            if "install_options" in raw:
                options = self.strings("pip.install_options", raw["install_options"], empty_ok=True)
            raw = raw.get("packages")
            key = "pip.packages"
        else:
            key = "pip"
        packages = self.strings(key, raw)
        self.unique(key, packages)
        return Pip(packages=packages, install_options=options)

    def strings(self, key: str, values, *, empty_ok: bool = False) -> tuple[str, ...]:
        if not isinstance(values, list) or not (values or empty_ok) or not all(isinstance(v, str) and v for v in values):
            raise self.fail(key, f"{values!r} is not a {'' if empty_ok else 'non-empty '}list of strings")
        return tuple(values)

    def optional_int(self, key: str, *, minimum: int, default: int | None = None) -> int | None:
        value = self.raw.get(key, default)
        if value is not None and not _is_int(value, minimum=minimum):
            raise self.fail(key, f"{value!r} is not a whole number >= {minimum}")
        return value

    def optional_str(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise self.fail(key, f"{value!r} is not a non-empty string")
        return value

    # -- whole-spec checks -----------------------------------------------------------------------

    def preflight(self, spec: SweepSpec) -> None:
        """The trials' own pre-work check (``shrink.experiment.preflight``) on every (model, strategy) of the
        grid at its highest compression, with each model's base; its message gets this file's prefix. And
        every matched strategy that follows its reference's trials has that reference in the grid."""
        for strategy in spec.strategies:
            reference = spec.reference_of(strategy)
            if reference is not None and reference not in spec.strategies:
                raise self.fail("strategies", f"{strategy} under schedule {spec.template.schedule!r} keeps, at every "
                                f"round, the per-layer counts of {reference}'s own trial: add {reference} to "
                                "strategies, or prune one-shot")
        for setting, model, strategy in itertools.product(spec.base_settings, spec.models, spec.strategies):
            trial = dataclasses.replace(spec.template, model=model, strategy=strategy,
                                        compression=max(spec.compressions), base=str(setting.source_of(model)))
            try:
                preflight(trial)
            except ConfigError as error:
                raise self.trial_error(error) from None

    def trial_error(self, error: ConfigError) -> SpecError:
        """A trial's ``ConfigError`` as this file's: prefixed with the file and the sweep key of the field at
        fault (unless the message already begins with it), and nothing else."""
        key = _SWEEP_KEY.get(error.key, error.key)
        message = str(error)
        if key is None or message.startswith(key):
            return SpecError(f"{self.origin}: {message}")
        return SpecError(f"{self.origin}: {key}: {message}")


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value, *, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
