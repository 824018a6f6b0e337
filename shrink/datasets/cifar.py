"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009), read from the standard "python version" pickle batches.

CIFAR-10: ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``; CIFAR-100: ``train`` and ``test``
(fine labels, 100 classes). Either directly in the directory or in the archive's own folder
(``cifar-10-batches-py``, ``cifar-100-python``). Each batch is a pickled dict whose ``data`` is a
N x 3072 uint8 array (1024 red, 1024 green, 1024 blue values, rows top to bottom).

Training augmentation: a random 32x32 crop of the image zero-padded by 4 pixels, and a horizontal
flip with probability 1/2. Normalization: per-channel mean and standard deviation over the training
images. Pickles are read with an unpickler that only builds plain containers and numpy arrays.
"""

import pickle
from pathlib import Path

import numpy as np

from shrink.datasets.base import DatasetFormatError, DatasetInfo
from shrink.datasets.download import Download
from shrink.datasets.source import ArraySource

AUGMENTATION = "random 32x32 crop of the 4-pixel zero-padded image, horizontal flip p=0.5"
PAPER = "Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images"
TORONTO = "https://www.cs.toronto.edu/~kriz"

_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ARRAY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 3 x 32 x 32 uint8) and labels of one CIFAR pickle batch."""
    try:
        with path.open("rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, KeyError, TypeError, ValueError) as err:
        raise DatasetFormatError(f"{path} is not a CIFAR python batch with 'data' and '{label_key}': {err!r}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetFormatError(f"{path}: 'data' has shape {data.shape}, expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32), labels


class CifarSource(ArraySource):
    """A CIFAR dataset: ``train_files`` and ``test_files`` in ``folder`` or directly in the directory."""

    def __init__(
        self,
        info: DatasetInfo,
        *,
        folder: str,
        train_files: tuple[str, ...],
        test_files: tuple[str, ...],
        label_key: str,
        **kwargs,
    ):
        needs = f"{', '.join(train_files + test_files)} (or their folder {folder})"
        super().__init__(info, crop_padding=4, hflip=True, needs=needs, **kwargs)
        self.folder = folder
        self.train_files = train_files
        self.test_files = test_files
        self.label_key = label_key

    def find(self, directory: Path) -> Path | None:
        for candidate in (directory, directory / self.folder):
            if all((candidate / name).is_file() for name in self.train_files + self.test_files):
                return candidate
        return None

    def read(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        train = [read_batch(path / name, self.label_key) for name in self.train_files]
        test = [read_batch(path / name, self.label_key) for name in self.test_files]
        return (
            np.concatenate([x for x, _ in train]),
            np.concatenate([y for _, y in train]),
            np.concatenate([x for x, _ in test]),
            np.concatenate([y for _, y in test]),
        )


CIFAR10 = CifarSource(
    DatasetInfo(
        name="cifar10",
        input_shape=(3, 32, 32),
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        family="cifar",
        augmentation=AUGMENTATION,
        source=PAPER,
    ),
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    label_key="labels",
    downloads=(Download(f"{TORONTO}/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
)

CIFAR100 = CifarSource(
    DatasetInfo(
        name="cifar100",
        input_shape=(3, 32, 32),
        num_classes=100,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        family="cifar",
        augmentation=AUGMENTATION,
        source=PAPER,
    ),
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    label_key="fine_labels",
    downloads=(Download(f"{TORONTO}/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),),
)
