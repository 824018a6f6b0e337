"""MNIST and Fashion-MNIST, read from the standard IDX files (gzipped or not).

Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each optionally with ``.gz``; 60,000 training and 10,000 test images of
28x28 grey pixels, 10 classes. No training augmentation. Normalization constants are the mean and
standard deviation of all pixels of the 60,000 training images, scaled to [0, 1].
"""

import gzip
import struct
from math import prod
from pathlib import Path

import numpy as np

from shrink.datasets.base import DatasetFormatError, DatasetInfo
from shrink.datasets.download import Download
from shrink.datasets.source import ArraySource

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    """The unsigned-byte array stored in IDX file ``path`` (gzip when the name ends in ``.gz``)."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DatasetFormatError(f"cannot read IDX file {path}: {err}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != UBYTE:
        raise DatasetFormatError(f"{path} is not an IDX file of unsigned bytes (magic {raw[:4].hex() or 'missing'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetFormatError(f"IDX file {path} is truncated inside its header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != prod(dims):
        raise DatasetFormatError(f"IDX file {path} declares shape {dims} but holds {len(raw) - header} values")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()


class IdxSource(ArraySource):
    """A dataset in MNIST's four IDX files."""

    def find(self, directory: Path) -> Path | None:
        return directory if all(_idx_file(directory, name) for name in FILES) else None

    def read(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        train_x, train_y, test_x, test_y = (read_idx(_idx_file(path, name)) for name in FILES)
        return train_x[:, None], train_y, test_x[:, None], test_y


def _idx_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


NEEDS = ", ".join(f"{name}[.gz]" for name in FILES)

MNIST = IdxSource(
    DatasetInfo(
        name="mnist",
        input_shape=(1, 28, 28),
        num_classes=10,
        mean=(0.1307,),
        std=(0.3081,),
        family="mnist",
        augmentation="none",
        source="LeCun et al. 1998, http://yann.lecun.com/exdb/mnist/",
    ),
    needs=NEEDS,
    downloads=tuple(
        Download(f"https://ossci-datasets.s3.amazonaws.com/mnist/{name}", md5)
        for name, md5 in (
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        )
    ),
)

FASHION_MNIST = IdxSource(
    DatasetInfo(
        name="fashion-mnist",
        input_shape=(1, 28, 28),
        num_classes=10,
        mean=(0.2860,),
        std=(0.3530,),
        family="mnist",
        augmentation="none",
        source="Xiao et al. 2017, Fashion-MNIST (Zalando Research)",
    ),
    needs=NEEDS,
    downloads=tuple(
        Download(f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}", md5)
        for name, md5 in (
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        )
    ),
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    provide="apt-get install dataset-fashion-mnist (Debian)",
)
