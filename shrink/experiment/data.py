"""The three splits a run reads, loaded once per process (trials in one worker share them)."""

import functools


@functools.lru_cache(maxsize=4)
def load_splits(dataset: str, data_root: str | None, val_fraction: float, split_seed: int) -> tuple:
    """``(train, val, test)`` :class:`shrink.datasets.Split` objects, cached per process."""
    from shrink import datasets

    return tuple(datasets.load(dataset, split, root=data_root, val_fraction=val_fraction, split_seed=split_seed)
                 for split in ("train", "val", "test"))
