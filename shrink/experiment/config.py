"""Trial configuration: plain dataclasses, the paper's fine-tuning presets per dataset family,
and validation that fails with a one-line message before any expensive work starts."""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field

from shrink.datasets.base import DECODE_CHOICES
from shrink.experiment.errors import ConfigError
from shrink.experiment.finetuning import FINETUNES
from shrink.experiment.sources import BaseSource
from shrink.experiment.tracking import DEFAULT_EXPERIMENT
from shrink.pruning.schedules import Schedule

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class FinetuneConfig:
    """How the pruned model is fine-tuned. ``None`` fields take the dataset family's preset."""

    optimizer: str | None = None  # "adam" or "sgd"
    lr: float | None = None  # fixed learning rate
    batch_size: int | None = None
    epochs: int | None = None  # at most this many epochs (0: evaluate the pruned model as is)
    momentum: float | None = None  # SGD only (0 for Adam)
    nesterov: bool | None = None  # SGD with momentum only
    weight_decay: float | None = None
    patience: int | None = None  # stop after this many epochs without a val top-1 gain
    min_delta: float | None = None  # the smallest val top-1 gain that counts as one
    variant: str | None = None  # "continue", "lr-rewind", "weight-rewind", "scratch" (shrink.experiment.finetuning)

    def __post_init__(self) -> None:
        _check_types(self)
        checks = [
            (self.optimizer is None or self.optimizer in OPTIMIZERS,
             f"finetune.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
            (self.lr is None or self.lr > 0, f"finetune.lr must be > 0, got {self.lr}"),
            (self.batch_size is None or self.batch_size >= 1,
             f"finetune.batch_size must be >= 1, got {self.batch_size}"),
            (self.epochs is None or self.epochs >= 0, f"finetune.epochs must be >= 0, got {self.epochs}"),
            (self.momentum is None or 0 <= self.momentum < 1,
             f"finetune.momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay is None or self.weight_decay >= 0,
             f"finetune.weight_decay must be >= 0, got {self.weight_decay}"),
            (self.patience is None or self.patience >= 1,
             f"finetune.patience must be >= 1, got {self.patience}"),
            (self.min_delta is None or self.min_delta >= 0,
             f"finetune.min_delta must be >= 0, got {self.min_delta}"),
            (self.variant is None or self.variant in FINETUNES,
             f"finetune.variant must be one of {', '.join(FINETUNES)}, got {self.variant!r}"),
        ]
        _raise_first(checks)

    def resolved(self, family: str) -> FinetuneConfig:
        """This config with unset fields taken from ``family``'s preset, checked as a whole."""
        preset = FINETUNE_PRESETS[family]
        done = FinetuneConfig(**{
            f.name: getattr(preset, f.name) if getattr(self, f.name) is None else getattr(self, f.name)
            for f in dataclasses.fields(self)
        })
        if done.optimizer == "adam" and (done.momentum or done.nesterov):
            raise ConfigError("finetune.momentum and finetune.nesterov apply to optimizer 'sgd' only",
                              key="finetune.optimizer")
        if done.nesterov and not done.momentum:
            raise ConfigError("finetune.nesterov needs finetune.momentum > 0", key="finetune.nesterov")
        return done


@dataclass(frozen=True)
class TrialConfig:
    """One trial: which base to prune, how, how to fine-tune, where to record.

    Build from plain values with :meth:`from_dict`; :meth:`resolved` fills every default
    (presets, device, threads, canonical strategy name) so the record is complete.
    """

    model: str
    dataset: str
    strategy: str
    compression: float  # total parameters / nonzero parameters to reach
    seed: int = 0  # seeds Python, NumPy and torch, the pruning batch and the shuffling
    data_root: str | None = None  # where the dataset files are (default: shrink.datasets' search)
    val_fraction: float = 0.1  # share of the official training set held out for validation
    split_seed: int = 0  # seeds the train/val carve-out
    base: str = "pretrain"  # where the base comes from: pretrain, torchvision[:<WEIGHTS>], a state-dict file
    base_name: str | None = None  # the sweep's name for this base setting (sweep files' bases:), recorded
    base_path: str | None = None  # base checkpoint (default: made from `base`, or the cached one)
    base_sha256: str | None = None  # its expected hash (default: from the sidecar beside it)
    prune_batch_size: int = 256  # training examples that data-driven strategies score on
    prune_classifier: bool = False  # prune the classifier layer too
    schedule: str = "one-shot"  # "one-shot", "iterative", "gradual" (shrink.pruning.schedules)
    schedule_rounds: int = 1  # pruning events of an iterative or gradual schedule (>= 2 there)
    schedule_every: int = 0  # optimizer steps between the events of a gradual schedule
    reference_run: str | None = None  # matched strategies: the MLflow run of the trial whose rounds they keep
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    device: str | None = None  # "cpu", "cuda", "cuda:N"; default CUDA when present
    threads: int | None = None  # CPU threads for torch (default: torch's current setting)
    workers: int = 1  # data-parallel processes fine-tuning the trial (shrink.experiment.ranks)
    deterministic: bool = False  # torch.use_deterministic_algorithms for the trial
    amp: bool | None = None  # mixed precision (bf16; fp16 before compute capability 8.0); default on CUDA only
    decode: str = "auto"  # where image files decode: cpu (workers), gpu (nvJPEG), auto (gpu with a JPEG engine)
    compile: bool | None = None  # torch.compile the model's steps (CUDA graphs on CUDA); default on CUDA only
    measure_latency: bool = True  # time dense vs pruned forward passes (measured_speedup); off: no such metrics
    latency_dir: str | None = None  # a sweep's: save the pair there for its exclusive timing phase, not time it now
    tracking_uri: str | None = None  # default: resolve_tracking_uri()
    experiment_name: str = DEFAULT_EXPERIMENT
    parent_run_id: str | None = None  # nests the trial's run under a sweep's run
    sweep: str | None = None  # the sweep's name, recorded as a tag
    # A sweep's shared dense control (compression 1): the strategies whose compression-1 trial it is, recorded
    # (shrink.experiment.recording.control_strategies) so that the report counts it for each; () otherwise.
    control_for: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_types(self)
        checks = [
            (self.compression >= 1, f"compression must be >= 1, got {self.compression}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.prune_batch_size >= 1, f"prune_batch_size must be >= 1, got {self.prune_batch_size}"),
            (self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}"),
            (self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
            (self.device is None or re.fullmatch(r"cpu|cuda(:\d+)?", self.device) is not None,
             f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"),
            (self.decode in DECODE_CHOICES, f"decode must be one of {', '.join(DECODE_CHOICES)}, got {self.decode!r}"),
            (self.base_sha256 is None or re.fullmatch(r"[0-9a-f]{64}", self.base_sha256) is not None,
             f"base_sha256 must be 64 lowercase hex digits, got {self.base_sha256!r}"),
            (self.base_sha256 is None or self.base_path is not None, "base_sha256 is set but base_path is not"),
            (not self.control_for or self.compression == 1,
             f"control_for names the strategies of a dense control, at compression 1, got {self.compression:g}"),
        ]
        _raise_first(checks)
        check_carve(self.val_fraction, self.split_seed)
        BaseSource.parse(self.base)
        try:
            Schedule(self.schedule, self.schedule_rounds, self.schedule_every)
        except ValueError as error:
            raise ConfigError(str(error), key="schedule") from None

    @classmethod
    def from_dict(cls, values: dict) -> TrialConfig:
        """Build from plain values (YAML, JSON, a Ray Tune config); unknown keys are an error."""
        values = dict(values)
        _reject_unknown(cls, values, "")
        finetune = values.pop("finetune", None) or {}
        if isinstance(finetune, str):  # `finetune: lr-rewind` names the variant alone
            finetune = {"variant": finetune}
        if isinstance(finetune, dict):
            _reject_unknown(FinetuneConfig, finetune, "finetune.")
            finetune = FinetuneConfig(**finetune)
        if isinstance(values.get("control_for"), list):  # JSON has no tuples
            values["control_for"] = tuple(values["control_for"])
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in values]
        if missing:
            raise ConfigError(f"trial config is missing {', '.join(missing)}")
        return cls(**values, finetune=finetune)

    def to_dict(self) -> dict:
        """Plain nested values (a tuple as a list, as JSON has it); ``from_dict(to_dict())`` round-trips."""
        return {**dataclasses.asdict(self), "control_for": list(self.control_for)}

    def flat(self) -> dict:
        """Every field with nested ones flattened with dots (``finetune.lr``) and lists as JSON: the MLflow
        params."""
        out = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                out[key] = json.dumps(value) if isinstance(value, list) else value
        return out

    def resolved(self) -> TrialConfig:
        """Check the names (model, dataset, strategy) and fill every default but the base,
        which :func:`shrink.experiment.run_trial` resolves (it may need pretraining)."""
        import torch

        from shrink import datasets
        from shrink.experiment.runtime import compile_default

        strategy = check_names(dataset=self.dataset, model=self.model, strategy=self.strategy)
        family = datasets.info(self.dataset).family
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} was asked for but CUDA is not available here")
        return dataclasses.replace(
            self,
            strategy=strategy,
            finetune=self.finetune.resolved(family),
            device=device,
            threads=self.threads or torch.get_num_threads(),
            amp=device.startswith("cuda") if self.amp is None else self.amp,
            decode=str(decode_for(self.decode, device, family)),
            compile=compile_default(device) if self.compile is None else self.compile,
        )


def decode_for(choice: str, device: str, family: str):
    """The ``shrink.datasets.Decode`` of the setting ``choice`` for ``device`` on this node (``shrink.datasets.resolve_decode``); ``auto`` asks NVML for the
    device's JPEG engine only where the dataset is decoded from image files (the ImageNet family)."""
    from shrink.datasets import resolve_decode
    from shrink.experiment.node import jpeg_engine

    device_type = device.split(":")[0]
    engine = jpeg_engine(device) if choice == "auto" and device_type == "cuda" and family == "imagenet" else None
    try:
        return resolve_decode(choice, device_type, engine)
    except ValueError as error:
        raise ConfigError(str(error), key="decode") from None


class UnknownName(ConfigError):
    """A dataset, model or strategy name that no registry knows; ``kind`` says which of the three."""

    def __init__(self, kind: str, message: str):
        super().__init__(message, key=kind)
        self.kind = kind


def check_names(*, dataset: str | None = None, model: str | None = None, strategy: str | None = None) -> str | None:
    """Check each given name against its registry (the one check for trials, sweep files and pretraining);
    return the canonical strategy name (None when no strategy is given). Raises :class:`UnknownName`
    whose message lists the known names, e.g. ``unknown model 'x'; known: small-mlp, ...``."""
    from shrink import datasets, models, pruning

    for kind, name, known in (("dataset", dataset, lambda: [d.name for d in datasets.available()]),
                              ("model", model, lambda: [m.name for m in models.available()])):
        if name is not None and name not in (names := known()):
            raise UnknownName(kind, f"unknown {kind} {name!r}; known: {', '.join(names)}")
    if strategy is None:
        return None
    try:
        return pruning.resolve_strategy(strategy)
    except ValueError as error:  # its message lists the known names and aliases
        raise UnknownName("strategy", str(error)) from None


class Unreachable(ConfigError):
    """A compression above what a model can reach by pruning weights; ``reachable`` is the most it can."""

    def __init__(self, message: str, reachable: float):
        super().__init__(message, key="compression")
        self.reachable = reachable


def check_reachable(model: str, dataset: str, compression: float, *, prune_classifier: bool) -> None:
    """Raise :class:`Unreachable` when ``model`` built for ``dataset`` cannot reach ``compression`` by
    pruning weights (the one reachability check of trials and sweep files). The model is built on the meta
    device: shapes without weights, so a VGG-16 costs no memory and no time."""
    import torch

    from shrink import datasets, models, pruning

    info = datasets.info(dataset)
    try:
        with torch.device("meta"):
            net = models.create(model, num_classes=info.num_classes, input_shape=info.input_shape)
    except ValueError as error:
        raise ConfigError(f"{model} cannot take {dataset} images {info.input_shape}: {error}", key="model") from None
    reachable = pruning.max_compression(net, prune_classifier=prune_classifier)
    if compression > reachable:
        hint = "" if prune_classifier else " with the classifier unpruned (see prune_classifier)"
        raise Unreachable(f"compression {compression:g} is unreachable for {model}: at most {reachable:g}{hint}",
                          reachable)


def _check_types(obj) -> None:
    """Each field holds a value of its annotated type (an int passes for a float, a bool for nothing else)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if typing.get_origin(hints[f.name]) is tuple:  # tuple[str, ...]
            if not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
                raise ConfigError(f"{type(obj).__name__}.{f.name} must be a tuple of names, got {value!r}", key=f.name)
            continue
        allowed = typing.get_args(hints[f.name]) if isinstance(hints[f.name], types.UnionType) else (hints[f.name],)
        allowed = tuple(type(None) if a is None else a for a in allowed)
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        ok = ok or (float in allowed and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            names = " or ".join("None" if a is type(None) else a.__name__ for a in allowed)
            key = f"finetune.{f.name}" if isinstance(obj, FinetuneConfig) else f.name
            raise ConfigError(f"{type(obj).__name__}.{f.name} must be {names}, got {value!r}", key=key)


def check_carve(val_fraction: float, split_seed: int) -> None:
    """``ConfigError`` unless the train/val carve-out's settings are ones ``shrink.datasets`` takes (its rule,
    checked without reading any file)."""
    from shrink.datasets.carve import check_fraction, check_seed

    for check, key, value in ((check_fraction, "val_fraction", val_fraction), (check_seed, "split_seed", split_seed)):
        try:
            check(value)
        except ValueError as error:
            raise ConfigError(str(error), key=key) from None


def _reject_unknown(cls, values: dict, prefix: str) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown trial config key {prefix + unknown[0]!r}; "
                          f"allowed: {', '.join(prefix + k for k in known)}")


def _raise_first(checks: list[tuple[bool, str]]) -> None:
    """Raise the message of the first failed check; each message begins with its field's name."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(message, key=message.split()[0])


# The fine-tuning presets of Blalock et al. (2020), section 7: fixed learning rate, no schedule.
_CIFAR = FinetuneConfig("adam", 3e-4, 64, 30, 0.0, False, 0.0, 5, 0.0, "continue")
FINETUNE_PRESETS: dict[str, FinetuneConfig] = {
    "cifar": _CIFAR,
    "mnist": _CIFAR,
    "digits": _CIFAR,
    "imagenet": FinetuneConfig("sgd", 1e-3, 256, 20, 0.9, True, 0.0, 5, 0.0, "continue"),
}
