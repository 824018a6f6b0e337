"""Dense base models: trained once with the family's recipe, cached by (model, dataset, recipe,
seed, train/val carve-out), named by the sha256 of their contents and verified on every load.

Every trial prunes the same base, named by hash (Blalock et al.: "using the same initial model
is essential"). A cache entry is a directory holding ``base-<16 hex>.pt`` (the state dict),
``rewind-<16 hex>.pt`` (the state after epoch ``Recipe.rewind_epoch``, for weight rewinding; the sidecar's
``rewind`` entry names it) and ``base-<16 hex>.json`` (the sidecar), the sidecar written last.
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

import torch

from shrink.atomic import atomic_write
from shrink.experiment.config import check_names
from shrink.experiment.data import load_splits
from shrink.experiment.errors import CheckpointMismatch, ConfigError
from shrink.experiment.loop import Compute, RateSchedule, evaluate, make_optimizer, run_epochs
from shrink.experiment.recipes import Recipe, recipe_for
from shrink.experiment.runtime import (configure_torch, default_device, git_commit, hardware,
                                       seed_everything, versions)

_stderr = functools.partial(print, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RewindPoint:
    """The early checkpoint saved beside a base: the state after base-training epoch ``epoch``."""

    epoch: int
    path: Path
    sha256: str


@dataclass(frozen=True)
class BaseCheckpoint:
    """A base model on disk: its ``path``, the ``sha256`` of the file, and its ``sidecar``.

    This class owns the sidecar's format: callers use the accessors below, never its keys.
    """

    path: Path
    sha256: str
    sidecar: dict

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
        sidecar = json.loads(sidecar_path.read_text())
        actual = file_sha256(path)
        if actual != sidecar["sha256"]:
            raise CheckpointMismatch(f"base checkpoint {path} has sha256 {actual}, its sidecar says "
                                     f"{sidecar['sha256']}")
        if sha256 is not None and actual != sha256:
            raise CheckpointMismatch(f"base checkpoint {path} has sha256 {actual}, the trial names {sha256}")
        return cls(path, actual, sidecar)

    def load(self) -> dict:
        """The state dict, its hash verified again (the file may have changed since it was opened)."""
        return load_base(self.path, self.sha256)

    @property
    def model(self) -> str:
        return self.sidecar["model"]

    @property
    def dataset(self) -> str:
        return self.sidecar["dataset"]

    def check_made_for(self, model: str, dataset: str) -> None:
        """Raise :class:`CheckpointMismatch` unless this base is ``model`` trained on ``dataset``."""
        if (self.sidecar.get("model"), self.sidecar.get("dataset")) != (model, dataset):
            raise CheckpointMismatch(f"base checkpoint {self.path} is {self.sidecar.get('model')} on "
                                     f"{self.sidecar.get('dataset')}, the trial is {model} on {dataset}")

    @property
    def recipe(self) -> Recipe:
        """The recipe the base was trained with."""
        recorded = self.sidecar["recipe"]
        return Recipe(**{f.name: recorded[f.name] for f in dataclasses.fields(Recipe)})

    @property
    def val_scores(self) -> dict:
        """``top1``, ``top5``, ``loss`` of the base on the validation split, measured after pretraining."""
        return self.sidecar["val"]

    @property
    def test_scores(self) -> dict:
        """The same on the test split."""
        return self.sidecar["test"]

    @property
    def rewind(self) -> RewindPoint | None:
        """The early checkpoint for weight rewinding (None for bases pretrained before shrink saved one)."""
        entry = self.sidecar.get("rewind")
        if entry is None:
            return None
        return RewindPoint(entry["epoch"], self.path.parent / entry["file"], entry["sha256"])

    def load_rewind(self) -> dict:
        """The early checkpoint's state dict, hash verified."""
        point = self.rewind
        if point is None:
            raise CheckpointMismatch(f"base {self.path} has no early checkpoint for weight rewinding (pretrained "
                                     f"before shrink saved one): delete {self.path.parent} to pretrain it again")
        return load_base(point.path, point.sha256)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where bases are cached: ``cache_dir``, else ``$SHRINK_CACHE/bases``, else ``~/.cache/shrink/bases``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("SHRINK_CACHE") or Path.home() / ".cache" / "shrink").expanduser() / "bases"


def pretrain(model: str, dataset: str, *, epochs: int | None = None, seed: int = 0,
             cache_dir: str | os.PathLike | None = None, data_root: str | None = None,
             val_fraction: float = 0.1, split_seed: int = 0, device: str | None = None,
             threads: int | None = None, progress: Callable[[str], None] | None = _stderr) -> BaseCheckpoint:
    """Train ``model`` on ``dataset``'s training split with the family's recipe (``epochs``
    overrides its length), or return the cached base when one exists for the same key.

    Prints one line per epoch through ``progress`` (``None``: silent).
    """
    from shrink import datasets, models

    check_names(dataset=dataset, model=model)
    family = datasets.info(dataset).family
    recipe = recipe_for(family, epochs)
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    entry = cache_root(cache_dir) / f"{model}_{dataset}_{recipe.name}_seed{seed}_val{val_fraction:g}s{split_seed}"
    cached = sorted(entry.glob("base-*.json"))
    if cached:
        return BaseCheckpoint.open(cached[0].with_suffix(".pt"))

    device = device or default_device()
    configure_torch(device, threads, deterministic=False)
    train, val, test = load_splits(dataset, data_root, val_fraction, split_seed)
    seed_everything(seed)  # after loading, which may draw random numbers only the first time
    net = models.create(model, num_classes=train.info.num_classes, input_shape=train.info.input_shape)
    compute = Compute.for_model(net, device)
    net = compute.prepare(net)
    optimizer = make_optimizer(net, recipe)
    start = time.perf_counter()
    for epoch in run_epochs(net, optimizer, train, val, compute, epochs=range(1, recipe.epochs + 1),
                            batch_size=recipe.batch_size, seed=seed, rates=RateSchedule(recipe)):
        if epoch.number == recipe.rewind_epoch:  # what weight rewinding returns to
            early = _state_bytes(net)
        if progress:
            progress(f"pretrain {model} on {dataset}: epoch {epoch.number}/{recipe.epochs} loss "
                     f"{epoch.stats.loss:.4f} val top-1 {epoch.val['top1']:.4f} {epoch.stats.seconds:.1f}s "
                     f"({epoch.stats.images_per_s:.0f} img/s)")
    sidecar = {
        "model": model, "dataset": dataset, "family": family, "recipe": {"name": recipe.name, **asdict(recipe)},
        "seed": seed, "val_fraction": val_fraction, "split_seed": split_seed, "split_hash": train.split_hash,
        "val": _scores(epoch.val), "test": _scores(evaluate(net, test, compute)),
        "train_loss": epoch.stats.loss, "wall_time_s": time.perf_counter() - start,
        "device": device, "hardware": hardware(device), "amp": compute.amp, "channels_last": compute.channels_last,
        "versions": json.loads(versions()),
        "git_commit": git_commit(),
    }
    base = _save(net, entry, sidecar, early, recipe.rewind_epoch)
    if progress:
        progress(f"pretrain {model} on {dataset}: wrote {base.path} (val top-1 {sidecar['val']['top1']:.4f}, "
                 f"test top-1 {sidecar['test']['top1']:.4f})")
    return base


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


def _save(net: torch.nn.Module, entry: Path, sidecar: dict, early: bytes, early_epoch: int) -> BaseCheckpoint:
    """Write the base, its early checkpoint (``rewind-<16 hex>.pt``, after ``early_epoch``) and, last, the sidecar."""
    data = _state_bytes(net)
    sha256 = hashlib.sha256(data).hexdigest()
    path = entry / f"base-{sha256[:16]}.pt"
    early_sha256 = hashlib.sha256(early).hexdigest()
    rewind = {"epoch": early_epoch, "file": f"rewind-{early_sha256[:16]}.pt", "sha256": early_sha256}
    sidecar = {"file": path.name, "sha256": sha256, **sidecar, "rewind": rewind}
    atomic_write(path, data)
    atomic_write(entry / rewind["file"], early)
    atomic_write(path.with_suffix(".json"), (json.dumps(sidecar, indent=2) + "\n").encode())
    return BaseCheckpoint(path, sha256, sidecar)


def _state_bytes(net: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, buffer)
    return buffer.getvalue()


def _scores(scores: dict) -> dict:
    return {k: scores[k] for k in ("top1", "top5", "loss")}
