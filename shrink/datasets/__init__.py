"""The named datasets, their deterministic train/validation carve-out, and fast batch iterators.

``load(name, split, *, root=None, val_fraction=0.1, split_seed=0, cpus=None, decode=Decode.CPU)`` returns a
``Split``; ``locate`` finds the files without downloading, ``fetch`` downloads them when missing; ``available()`` and ``info(name)``
describe the datasets; ``fingerprint`` names the data itself and ``class_count`` counts the classes of the
files found.
"""

from shrink.datasets.base import (
    DECODE_CHOICES,
    DatasetFormatError,
    DatasetInfo,
    DatasetNotFound,
    Decode,
    Shard,
    Split,
    UnknownDataset,
    resolve_decode,
)
from shrink.datasets.registry import available, class_count, fetch, fingerprint, info, load, locate

__all__ = [
    "DECODE_CHOICES",
    "DatasetFormatError",
    "DatasetInfo",
    "DatasetNotFound",
    "Decode",
    "Shard",
    "Split",
    "UnknownDataset",
    "available",
    "class_count",
    "fetch",
    "fingerprint",
    "info",
    "load",
    "locate",
    "resolve_decode",
]
