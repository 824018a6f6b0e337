"""How a named dataset is found on disk, downloaded, opened as splits, and fingerprinted.

A fingerprint (16 hex digits) names the data itself, so that a base trained on some files is never
taken for one trained on others. It must be cheap, and equal on every node of a cluster that holds
its own copy of the same data (so neither paths nor modification times enter it):

- array datasets (MNIST, Fashion-MNIST, CIFAR, digits): the sha256 of the decoded arrays, images and
  labels of both official splits. They are read whole anyway (and cached), so hashing costs a fraction of
  a second (~0.4 s for CIFAR's 180 MB), and it does not change when the same data is stored gzipped or not.
- ImageFolder trees (ImageNet): the sha256 of every file's path relative to the root and its size in
  bytes. Hashing the contents of 1.3M JPEGs (~150 GB) would take far longer than the listing the
  trial makes anyway; names and sizes tell apart a subset, another class layout or re-encoded images,
  but not an image edited in place to the same size (rejected trade-off: recorded here, not hidden).
"""

import hashlib
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from shrink.datasets.base import DatasetFormatError, DatasetInfo, Decode, Split
from shrink.datasets.carve import split_hash, stratified
from shrink.datasets.download import Download
from shrink.datasets.tensor_split import TensorSplit


class Source(ABC):
    """One dataset's files: which ones (``needs``, in words), where else they may be (``system_dirs``),
    how to get them (``downloads``, and ``provide``: advice for the error message), and how to open them."""

    def __init__(
        self,
        info: DatasetInfo,
        *,
        needs: str,
        downloads: tuple[Download, ...] = (),
        system_dirs: tuple[Path, ...] = (),
        provide: str = "",
    ):
        self.info = info
        self.needs = needs
        self.downloads = downloads
        self.system_dirs = system_dirs
        self.provide = provide

    @abstractmethod
    def find(self, directory: Path) -> Path | None:
        """The directory holding this dataset's files if ``directory`` (or its canonical sub-folder) has them."""

    @abstractmethod
    def open(self, path: Path, split: str, *, val_fraction: float, split_seed: int, cpus: int | None = None,
             decode: Decode = Decode.CPU) -> Split:
        """Split ``split`` of the files at ``path`` (as returned by ``find``), read by processes that keep at most
        ``cpus`` CPUs busy (default: this machine's), image files decoded where ``decode`` says."""

    @abstractmethod
    def fingerprint(self, path: Path) -> str:
        """16 hex digits naming the data at ``path`` (see the module doc for what enters it)."""


class ArraySource(Source):
    """A small dataset read whole into uint8 arrays and served by the tensor fast path.

    ``crop_padding`` and ``hflip`` are its training augmentation (see ``TensorSplit``).
    """

    def __init__(self, info: DatasetInfo, *, crop_padding: int = 0, hflip: bool = False, **kwargs):
        super().__init__(info, **kwargs)
        self.crop_padding = crop_padding
        self.hflip = hflip

    @abstractmethod
    def read(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(train_images, train_labels, test_images, test_labels)``; images uint8 N x C x H x W."""

    def open(self, path: Path, split: str, *, val_fraction: float, split_seed: int, cpus: int | None = None,
             decode: Decode = Decode.CPU) -> Split:
        train_x, train_y, test_x, test_y = _read_checked(self, path)
        kept, carved = stratified(train_y, val_fraction, split_seed)
        identity = split_hash(self.info.name, split_seed, val_fraction, kept, carved)
        if split == "test":
            images, labels = test_x, test_y
        else:
            rows = kept if split == "train" else carved
            images, labels = train_x[rows], train_y[rows]
        return TensorSplit(
            self.info,
            split,
            identity,
            torch.from_numpy(images),
            torch.from_numpy(labels.astype(np.int64)),
            crop_padding=self.crop_padding,
            hflip=self.hflip,
        )


    def fingerprint(self, path: Path) -> str:
        return _array_fingerprint(self, path)


@lru_cache(maxsize=4)
def _array_fingerprint(source: "ArraySource", path: Path) -> str:
    digest = hashlib.sha256()
    for array in _read_checked(source, path):
        digest.update(f"{array.dtype.str}{array.shape}|".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=2)
def _read_checked(source: ArraySource, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``source.read(path)``, checked against the dataset's shape and class count; the last two reads stay cached."""
    arrays = source.read(path)
    shape, classes = source.info.input_shape, source.info.num_classes
    for part, images, labels in (("training", *arrays[:2]), ("test", *arrays[2:])):
        if images.dtype != np.uint8 or images.shape[1:] != shape or labels.shape != images.shape[:1]:
            raise DatasetFormatError(
                f"{source.info.name} {part} data in {path}: expected uint8 images of shape "
                f"(N, {', '.join(map(str, shape))}) and N labels, "
                f"got {images.dtype} {images.shape} and {labels.shape[0]} labels"
            )
        if len(labels) and not 0 <= labels.min() <= labels.max() < classes:
            raise DatasetFormatError(
                f"{source.info.name} {part} labels in {path} range over [{labels.min()}, {labels.max()}], "
                f"expected [0, {classes - 1}]"
            )
    return arrays
