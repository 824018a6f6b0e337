"""Dense base models: pretrained once with the family's recipe, or adopted from published or file
weights (``shrink.experiment.sources``); cached, named by the sha256 of their file, verified on every load.

Every trial prunes the same base, named by hash (Blalock et al.: "using the same initial model
is essential"). A cache entry is a directory holding ``base-<16 hex>.pt`` (the state dict),
``rewind-<16 hex>.pt`` (pretrained bases: the state after epoch ``Recipe.rewind_epoch``, for weight
rewinding; the sidecar's ``rewind`` entry names it) and ``base-<16 hex>.json`` (the sidecar), the
sidecar written last: an entry without one is unfinished. An adopted base's file is the weights file
byte for byte, so its sha256 is the published file's.

The entry's name is the cache key: model, dataset, the recipe and seed (pretrained) or the source and
the file's hash (adopted), the train/validation carve-out and the data's fingerprint
(``shrink.datasets.fingerprint``). A trial checks that its own split and data are the base's
(:meth:`BaseCheckpoint.check_data`): a base's validation split must not have been in its training data.
A base is made under a lock on its entry (``<entry>.lock``, an OS file lock: released when its holder
dies), so concurrent sweeps or trials that need the same base make it once.
"""

import dataclasses
import functools
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import filelock
import torch

from shrink.atomic import atomic_write
from shrink.cache import cache_root
from shrink.experiment.config import TrialConfig, check_carve, check_names, decode_for
from shrink.experiment.data import load_splits
from shrink.experiment.errors import CheckpointMismatch, ConfigError
from shrink.experiment.loop import Compute, RateSchedule, evaluate_split, make_optimizer, run_epochs
from shrink.experiment.recipes import Recipe, recipe_for
from shrink.experiment.runtime import (configure_torch, default_device, git_commit, hardware,
                                       seed_everything, versions)
from shrink.experiment.sources import PRETRAIN, BaseSource
from shrink.metrics import Scores

_stderr = functools.partial(print, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RewindPoint:
    """The early checkpoint saved beside a base: the state after base-training epoch ``epoch``."""

    epoch: int
    path: Path
    sha256: str


@dataclass(frozen=True)
class Rewind:
    """The sidecar's record of the early checkpoint: its epoch, file name (beside the base) and sha256."""

    epoch: int
    file: str
    sha256: str


@dataclass(frozen=True)
class RunRecord:
    """Where and with what a base was made or measured."""

    device: str
    hardware: str
    amp: str  # the AmpMode: "bf16", "fp16" or "off"
    channels_last: bool
    compile: bool  # whether its steps ran compiled (Compute.compile)
    versions: dict  # library versions, as runtime.versions() reads them
    git_commit: str | None
    started_at: float
    finished_at: float

    @classmethod
    def from_record(cls, record: dict) -> "RunRecord":
        """The sidecar's fields (its ``amp`` true/false, as written before fp16 existed, read as bf16/off;
        ``compile`` False where written before it existed)."""
        values = {f.name: record.get(f.name) for f in dataclasses.fields(cls)}
        if isinstance(values["amp"], bool):
            values["amp"] = "bf16" if values["amp"] else "off"
        values["compile"] = bool(values["compile"])
        return cls(**values)

    @classmethod
    def now(cls, device: str, compute: Compute, started_at: float) -> "RunRecord":
        return cls(device, hardware(device), str(compute.amp), compute.channels_last, compute.compile,
                   json.loads(versions()), git_commit(), started_at, time.time())


@dataclass(frozen=True)
class Sidecar:
    """The JSON file beside a base (``base-<16 hex>.json``): this class is the one reader and writer of its
    format. Sidecars written before a field existed read as its default (``source`` pretrain,
    ``trained_elsewhere`` False, ``data_fingerprint``, ``rewind`` and a score's ``n`` None)."""

    file: str  # the base's file name, in the same folder
    sha256: str
    model: str
    dataset: str
    family: str
    recipe: Recipe | None  # None for a base trained elsewhere
    seed: int | None  # the pretraining seed (None when trained elsewhere)
    val_fraction: float
    split_seed: int
    split_hash: str
    val: Scores  # on the validation split, measured when the base was made
    test: Scores
    wall_time_s: float
    run: RunRecord
    source: str = PRETRAIN  # pretrain, torchvision:<WEIGHTS> or file:<path>
    trained_elsewhere: bool = False
    data_fingerprint: str | None = None
    train_loss: float | None = None  # the last pretraining epoch's (None when trained elsewhere)
    rewind: Rewind | None = None  # pretrained bases: the early checkpoint for weight rewinding

    def to_json(self) -> str:
        record = {
            "file": self.file, "sha256": self.sha256, "model": self.model, "dataset": self.dataset,
            "family": self.family, "source": self.source, "trained_elsewhere": self.trained_elsewhere,
            "recipe": None if self.recipe is None else {"name": self.recipe.name, **asdict(self.recipe)},
            "seed": self.seed, "val_fraction": self.val_fraction, "split_seed": self.split_seed,
            "split_hash": self.split_hash, "data_fingerprint": self.data_fingerprint,
            "val": asdict(self.val), "test": asdict(self.test), "train_loss": self.train_loss,
            "wall_time_s": self.wall_time_s, **asdict(self.run),
            **({"rewind": asdict(self.rewind)} if self.rewind is not None else {}),
        }
        return json.dumps(record, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Sidecar":
        record = json.loads(text)
        recipe, rewind = record.get("recipe"), record.get("rewind")
        fixed = {f.name: record[f.name] for f in dataclasses.fields(cls)
                 if f.name in record and f.name not in ("recipe", "val", "test", "run", "rewind")}
        return cls(
            **fixed,
            recipe=None if recipe is None else Recipe(**{f.name: recipe[f.name] for f in dataclasses.fields(Recipe)}),
            val=_scores(record["val"]), test=_scores(record["test"]),
            run=RunRecord.from_record(record),
            rewind=None if rewind is None else Rewind(**rewind),
        )


@dataclass(frozen=True)
class BaseCheckpoint:
    """A base model on disk: its ``path``, the ``sha256`` of the file, and its :class:`Sidecar`."""

    path: Path
    sha256: str
    sidecar: Sidecar

    @classmethod
    def open(cls, path: str | os.PathLike, sha256: str | None = None) -> "BaseCheckpoint":
        """The checkpoint at ``path`` with the sidecar beside it, its hash verified against the sidecar
        and, when given, against ``sha256``."""
        path = Path(path)
        sidecar_path = path.with_suffix(".json")
        if not path.is_file():
            raise CheckpointMismatch(f"base checkpoint {path} does not exist")
        if not sidecar_path.is_file():
            raise CheckpointMismatch(f"base checkpoint {path} has no sidecar {sidecar_path.name} beside it; "
                                     "give its sha256 explicitly")
        sidecar = Sidecar.from_json(sidecar_path.read_text())
        actual = file_sha256(path)
        if actual != sidecar.sha256:
            raise CheckpointMismatch(f"base checkpoint {path} has sha256 {actual}, its sidecar says {sidecar.sha256}")
        if sha256 is not None and actual != sha256:
            raise CheckpointMismatch(f"base checkpoint {path} has sha256 {actual}, the trial names {sha256}")
        return cls(path, actual, sidecar)

    @staticmethod
    def is_checkpoint(path: str | os.PathLike) -> bool:
        """Whether ``path`` is a base checkpoint shrink wrote (a sidecar beside it), not a bare state dict."""
        return Path(path).with_suffix(".json").is_file() and Path(path).is_file()

    def load(self) -> dict:
        """The state dict, its hash verified again (the file may have changed since it was opened)."""
        return load_base(self.path, self.sha256)

    @property
    def model(self) -> str:
        return self.sidecar.model

    @property
    def dataset(self) -> str:
        return self.sidecar.dataset

    def check_made_for(self, model: str, dataset: str) -> None:
        """Raise :class:`CheckpointMismatch` unless this base is ``model`` trained on ``dataset``."""
        if (self.model, self.dataset) != (model, dataset):
            raise CheckpointMismatch(f"base checkpoint {self.path} is {self.model} on {self.dataset}, the trial is "
                                     f"{model} on {dataset}")

    @property
    def recipe(self) -> Recipe | None:
        """The recipe the base was trained with (None for a base trained elsewhere)."""
        return self.sidecar.recipe

    @property
    def source(self) -> str:
        """Where the base comes from: ``pretrain``, ``torchvision:<WEIGHTS>`` or ``file:<path>``."""
        return self.sidecar.source

    @property
    def trained_elsewhere(self) -> bool:
        """Whether the base was trained outside shrink, on data that included the validation carve-out."""
        return self.sidecar.trained_elsewhere

    @property
    def seed(self) -> int | None:
        """The pretraining seed (None for a base trained elsewhere)."""
        return self.sidecar.seed

    @property
    def split(self) -> str:
        """The train/validation carve-out it was made and measured on, in words."""
        return f"val_fraction {self.sidecar.val_fraction:g}, split_seed {self.sidecar.split_seed}"

    def check_data(self, split_hash: str, data_fingerprint: str, split: str) -> None:
        """``ConfigError`` naming both unless the trial's carve-out (``split_hash``, described by ``split``)
        and data (``data_fingerprint``) are this base's. Bases made before fingerprints were recorded are
        checked on the split alone."""
        mine = self.sidecar.data_fingerprint
        if mine is not None and mine != data_fingerprint:
            raise ConfigError(f"base {self.path} was made on {self.dataset} data with fingerprint {mine}; this "
                              f"trial's data has fingerprint {data_fingerprint}: other files, so the base's "
                              "scores do not hold and its training data may overlap this validation split",
                              key="base")
        if self.sidecar.split_hash != split_hash:
            raise ConfigError(f"base {self.path} was made on split {self.sidecar.split_hash} ({self.split}); "
                              f"this trial's split is {split_hash} ({split}): the base's training data would "
                              "overlap this trial's validation split", key="base")

    @property
    def disk_bytes(self) -> int:
        """Bytes of its cache entry on disk (base, early checkpoint, sidecar)."""
        return sum(p.stat().st_size for p in self.path.parent.iterdir() if p.is_file())

    @property
    def val_scores(self) -> Scores:
        """The base on the validation split, measured when it was made."""
        return self.sidecar.val

    @property
    def test_scores(self) -> Scores:
        """The same on the test split."""
        return self.sidecar.test

    @property
    def rewind(self) -> RewindPoint | None:
        """The early checkpoint for weight rewinding (None for bases pretrained before shrink saved one)."""
        entry = self.sidecar.rewind
        return None if entry is None else RewindPoint(entry.epoch, self.path.parent / entry.file, entry.sha256)

    def load_rewind(self) -> dict:
        """The early checkpoint's state dict, hash verified."""
        point = self.rewind
        if point is None:
            raise CheckpointMismatch(f"base {self.path} has no early checkpoint for weight rewinding (pretrained "
                                     f"before shrink saved one): delete {self.path.parent} to pretrain it again")
        return load_base(point.path, point.sha256)


def bases_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where bases are cached: ``cache_dir``, else ``<shrink.cache.cache_root()>/bases``."""
    return Path(cache_dir).expanduser() if cache_dir is not None else cache_root() / "bases"


@dataclass(frozen=True)
class BaseRequest:
    """Which base is needed: ``model`` on ``dataset`` with its carve-out, from ``source`` (a ``base:``
    value); ``epochs`` (the recipe's when None), ``seed`` and the recipe ``overrides`` (``(field, value)``
    pairs, ``recipes.OVERRIDES``) apply to pretrained bases only."""

    model: str
    dataset: str
    source: str = PRETRAIN
    epochs: int | None = None
    seed: int = 0
    data_root: str | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    overrides: tuple[tuple[str, object], ...] = ()

    @classmethod
    def for_trial(cls, config: TrialConfig, *, epochs: int | None = None, seed: int = 0,
                  overrides: tuple[tuple[str, object], ...] = ()) -> "BaseRequest":
        """The base a trial of ``config`` prunes when it names none by path (pretrained: seed ``seed``)."""
        return cls(config.model, config.dataset, config.base, epochs=epochs, seed=seed, data_root=config.data_root,
                   val_fraction=config.val_fraction, split_seed=config.split_seed, overrides=overrides)

    def __str__(self) -> str:
        changed = "".join(f", {name} {value}" for name, value in self.overrides)
        made = f"pretrain seed {self.seed}{changed}" if self.origin.kind == PRETRAIN else self.source
        return f"{self.model} on {self.dataset} ({made})"

    def recipe(self) -> Recipe:
        """The recipe a pretrained base is trained with."""
        from shrink import datasets

        return recipe_for(datasets.info(self.dataset).family, self.epochs, self.overrides)

    @property
    def origin(self) -> BaseSource:
        return BaseSource.parse(self.source)

    def check(self, weights: bytes | None = None) -> None:
        """Every check that needs neither the base nor any training (``ConfigError``): the names, the
        carve-out, the recipe; for weights trained elsewhere (``weights``: the file's bytes, when read
        already), that the data's files are there (``DatasetNotFound``) and fit them."""
        from shrink import datasets

        check_names(dataset=self.dataset, model=self.model)
        check_carve(self.val_fraction, self.split_seed)
        if self.origin.kind == PRETRAIN:
            self.recipe()
        elif self.overrides:
            raise ConfigError(f"base {self.source} was trained elsewhere: its recipe cannot be set", key="base")
        self.origin.check(self.model, self.dataset)
        self.origin.check_data(self.model, self.dataset, self.data_root, weights)

    def weights(self) -> bytes | None:
        """The file of weights trained elsewhere (published ones fetched when not cached); None for pretrain."""
        return self.origin.read(self.model) if self.origin.trained_elsewhere else None

    def entry(self, cache_dir: str | os.PathLike | None, weights: bytes | None) -> Path:
        """The cache entry (see the module doc); reads the data to fingerprint it."""
        from shrink import datasets

        data = f"val{self.val_fraction:g}s{self.split_seed}_data{datasets.fingerprint(self.dataset, self.data_root)}"
        origin = self.origin
        if origin.kind == PRETRAIN:
            made = f"{self.recipe().name}_seed{self.seed}"
        else:
            label = f"torchvision-{origin.published(self.model).name}" if origin.kind == "torchvision" else "file"
            made = f"{label}-{hashlib.sha256(weights).hexdigest()[:12]}"
        return bases_dir(cache_dir) / f"{self.model}_{self.dataset}_{made}_{data}"


def resolve_base(config: TrialConfig) -> BaseCheckpoint:
    """The one base resolution of a trial, whatever runs it: the base named by path (and hash), else the
    cached or freshly made one of its ``base`` source (pretrained with seed 0, or adopted)."""
    if config.base_path is None:
        return make_base(BaseRequest.for_trial(config), device=config.device, threads=config.threads)
    base = BaseCheckpoint.open(config.base_path, config.base_sha256)
    base.check_made_for(config.model, config.dataset)
    return base


def find_base(request: BaseRequest, weights: bytes | None = None, *,
              cache_dir: str | os.PathLike | None = None) -> BaseCheckpoint | None:
    """The cached base for ``request`` (``weights``: its file's bytes, when trained elsewhere), or None."""
    if request.origin.trained_elsewhere and weights is None:
        weights = request.weights()
    return _cached(request.entry(cache_dir, weights))


def make_base(request: BaseRequest, weights: bytes | None = None, *, cache_dir: str | os.PathLike | None = None,
              device: str | None = None, threads: int | None = None,
              progress: Callable[[str], None] | None = _stderr) -> BaseCheckpoint:
    """The base ``request`` names: cached, else made under the entry's lock (pretrained, or weights
    trained elsewhere adopted and measured on this split). ``weights``: the file's bytes when the caller
    has them. Every check of :meth:`BaseRequest.check` runs first."""
    request.check(weights)
    if request.origin.trained_elsewhere and weights is None:
        weights = request.weights()
    entry = request.entry(cache_dir, weights)
    lock = filelock.FileLock(entry.with_name(entry.name + ".lock"))
    entry.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if progress:
            progress(f"base {request}: another process is making it ({lock.lock_file}); waiting for it")
        lock.acquire()
    try:
        cached = _cached(entry)
        if cached is not None:
            return cached
        if request.origin.trained_elsewhere:
            return _adopt(request, entry, weights, device, threads, progress)
        return _pretrain(request, entry, device, threads, progress)
    finally:
        lock.release()


def pretrain(model: str, dataset: str, *, epochs: int | None = None, seed: int = 0,
             cache_dir: str | os.PathLike | None = None, data_root: str | None = None,
             val_fraction: float = 0.1, split_seed: int = 0, device: str | None = None,
             threads: int | None = None, progress: Callable[[str], None] | None = _stderr) -> BaseCheckpoint:
    """Train ``model`` on ``dataset``'s training split with the family's recipe (``epochs``
    overrides its length), or return the cached base when one exists for the same key.

    Prints one line per epoch through ``progress`` (``None``: silent).
    """
    request = BaseRequest(model, dataset, PRETRAIN, epochs=epochs, seed=seed, data_root=data_root,
                          val_fraction=val_fraction, split_seed=split_seed)
    return make_base(request, cache_dir=cache_dir, device=device, threads=threads, progress=progress)


def cached_bases(cache_dir: str | os.PathLike | None = None) -> list[BaseCheckpoint]:
    """Every finished base in the cache (entries with a sidecar), in name order, hashes verified."""
    return [BaseCheckpoint.open(sidecar.with_suffix(".pt"))
            for sidecar in sorted(bases_dir(cache_dir).glob("*/base-*.json"))]


def _cached(entry: Path) -> BaseCheckpoint | None:
    cached = sorted(entry.glob("base-*.json"))
    return BaseCheckpoint.open(cached[0].with_suffix(".pt")) if cached else None


def _pretrain(request: BaseRequest, entry: Path, device: str | None, threads: int | None,
              progress: Callable[[str], None] | None) -> BaseCheckpoint:
    from shrink import datasets, models

    model, dataset, seed = request.model, request.dataset, request.seed
    family = datasets.info(dataset).family
    recipe = request.recipe()
    device = device or default_device()
    configure_torch(device, threads, deterministic=False)
    splits = load_splits(dataset, request.data_root, request.val_fraction, request.split_seed, threads,
                         decode_for("auto", device, family))
    if recipe.batch_size > len(splits.train):
        raise ConfigError(f"the {family} recipe's batch size {recipe.batch_size} exceeds the {len(splits.train)} "
                          f"training examples of {dataset}")
    seed_everything(seed)  # after loading, which may draw random numbers only the first time
    info = splits.train.info
    net = models.create(model, num_classes=info.num_classes, input_shape=info.input_shape)
    compute = Compute.for_model(net, device)
    net = compute.prepare(net)
    optimizer = make_optimizer(net, recipe)
    started_at = time.time()
    start = time.perf_counter()
    for epoch in run_epochs(net, optimizer, splits.train, splits.val, compute, epochs=range(1, recipe.epochs + 1),
                            batch_size=recipe.batch_size, seed=seed, rates=RateSchedule(recipe)):
        if epoch.number == recipe.rewind_epoch:  # what weight rewinding returns to
            early = _state_bytes(net)
        if progress:
            progress(f"pretrain {model} on {dataset}: epoch {epoch.number}/{recipe.epochs} loss "
                     f"{epoch.stats.loss:.4f} val top-1 {epoch.val.top1:.4f} {epoch.stats.seconds:.1f}s "
                     f"({epoch.stats.images_per_s:.0f} img/s)")
    base = _save(_state_bytes(net), entry, (early, recipe.rewind_epoch),
                 model=model, dataset=dataset, family=family, recipe=recipe, seed=seed,
                 **_split_record(request, splits.train), val=epoch.val,
                 test=evaluate_split(net, splits.test, compute), train_loss=epoch.stats.loss,
                 wall_time_s=time.perf_counter() - start, run=RunRecord.now(device, compute, started_at))
    if progress:
        progress(f"pretrain {model} on {dataset}: wrote {base.path} (val top-1 {base.val_scores.top1:.4f}, "
                 f"test top-1 {base.test_scores.top1:.4f})")
    return base


def _adopt(request: BaseRequest, entry: Path, weights: bytes, device: str | None, threads: int | None,
           progress: Callable[[str], None] | None) -> BaseCheckpoint:
    """Take weights trained elsewhere as the base: check they fit, measure them on this split, cache them."""
    from shrink import datasets, models

    source = request.origin.label(request.model)
    device = device or default_device()
    configure_torch(device, threads, deterministic=False)
    splits = load_splits(request.dataset, request.data_root, request.val_fraction, request.split_seed, threads,
                         decode_for("auto", device, datasets.info(request.dataset).family))
    started_at = time.time()
    start = time.perf_counter()
    info = splits.train.info
    net = models.create(request.model, num_classes=info.num_classes, input_shape=info.input_shape)
    net.load_state_dict(models.read_state(weights, source))  # checked to fit by make_base
    compute = Compute.for_model(net, device)
    net = compute.prepare(net)
    if progress:
        progress(f"base {request}: measuring it on {len(splits.val)} validation and {len(splits.test)} test examples")
    base = _save(weights, entry, None, model=request.model, dataset=request.dataset,
                 family=datasets.info(request.dataset).family, source=source, trained_elsewhere=True, recipe=None,
                 seed=None, **_split_record(request, splits.train), val=evaluate_split(net, splits.val, compute),
                 test=evaluate_split(net, splits.test, compute), wall_time_s=time.perf_counter() - start,
                 run=RunRecord.now(device, compute, started_at))
    if progress:
        progress(f"base {request}: wrote {base.path} (val top-1 {base.val_scores.top1:.4f}, "
                 f"test top-1 {base.test_scores.top1:.4f})")
    return base


def _split_record(request: BaseRequest, train) -> dict:
    """The sidecar fields that name the carve-out and the data (keyword arguments of :class:`Sidecar`)."""
    from shrink import datasets

    return {"val_fraction": request.val_fraction, "split_seed": request.split_seed, "split_hash": train.split_hash,
            "data_fingerprint": datasets.fingerprint(request.dataset, request.data_root)}


def load_base(path: str | os.PathLike, sha256: str) -> dict:
    """The state dict in ``path``, after checking that the file's sha256 is ``sha256``."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointMismatch(f"base checkpoint {path} does not exist") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise CheckpointMismatch(f"base checkpoint {path} has sha256 {actual}, expected {sha256}: "
                                 "it is not the base this trial names")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's contents, in hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _save(data: bytes, entry: Path, early: tuple[bytes, int] | None, **fields) -> BaseCheckpoint:
    """Write the base, its early checkpoint (``rewind-<16 hex>.pt``: ``early`` is its bytes and epoch) and,
    last, the sidecar (``fields``: the rest of :class:`Sidecar`)."""
    sha256 = hashlib.sha256(data).hexdigest()
    path = entry / f"base-{sha256[:16]}.pt"
    atomic_write(path, data)
    rewind = None
    if early is not None:
        early_sha256 = hashlib.sha256(early[0]).hexdigest()
        rewind = Rewind(early[1], f"rewind-{early_sha256[:16]}.pt", early_sha256)
        atomic_write(entry / rewind.file, early[0])
    sidecar = Sidecar(file=path.name, sha256=sha256, rewind=rewind, **fields)
    atomic_write(path.with_suffix(".json"), sidecar.to_json().encode())
    return BaseCheckpoint(path, sha256, sidecar)


def _state_bytes(net: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, buffer)
    return buffer.getvalue()


def _scores(record: dict) -> Scores:
    return Scores(record["top1"], record["top5"], record["loss"], record.get("n"))
