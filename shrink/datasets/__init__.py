"""The named datasets, their deterministic train/validation carve-out, and fast batch iterators.

``load(name, split, *, root=None, val_fraction=0.1, split_seed=0)`` returns a ``Split``; ``locate`` finds
the files without downloading, ``fetch`` downloads them when missing; ``available()`` and ``info(name)``
describe the datasets.
"""

from shrink.datasets.base import DatasetFormatError, DatasetInfo, DatasetNotFound, Shard, Split, UnknownDataset
from shrink.datasets.registry import available, fetch, info, load, locate

__all__ = [
    "DatasetFormatError",
    "DatasetInfo",
    "DatasetNotFound",
    "Shard",
    "Split",
    "UnknownDataset",
    "available",
    "fetch",
    "info",
    "load",
    "locate",
]
