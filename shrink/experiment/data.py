"""The three splits a run reads, loaded once per process (trials in one worker share them)."""

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Splits:
    """The three :class:`shrink.datasets.Split` objects of one train/val carve-out."""

    train: object
    val: object
    test: object


@functools.lru_cache(maxsize=4)
def load_splits(dataset: str, data_root: str | None, val_fraction: float, split_seed: int,
                cpus: int | None = None, decode: str = "cpu") -> Splits:
    """The train, val and test splits of ``dataset``, cached per process; their loaders keep at most ``cpus``
    CPUs busy (the run's share: its ``threads``; default this machine's) and decode image files where
    ``decode`` (``cpu``, ``gpu``: a resolved ``TrialConfig.decode``) says."""
    from shrink import datasets

    return Splits(*(datasets.load(dataset, split, root=data_root, val_fraction=val_fraction, split_seed=split_seed,
                                  cpus=cpus, decode=datasets.Decode(decode)) for split in ("train", "val", "test")))
