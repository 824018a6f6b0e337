"""Writers of tiny dataset files in the real formats, for tests to load through the real readers."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000 08 <ndim>, big-endian dimensions, then the data."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_mnist(directory: Path, train_x, train_y, test_x, test_y, *, gzipped=(True, True, False, False)) -> Path:
    """The four MNIST IDX files, each gzipped or raw as ``gzipped`` says."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, array, gz in zip(IDX_NAMES, (train_x, train_y, test_x, test_y), gzipped, strict=True):
        data = idx_bytes(np.asarray(array))
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


def position_coded_mnist(n_train=100, n_test=20) -> tuple[np.ndarray, ...]:
    """Images whose every pixel holds the image's own index (mod 256), labels cycling 0..9."""
    train_x = np.repeat(np.arange(n_train) % 256, 28 * 28).reshape(n_train, 28, 28)
    test_x = np.repeat((np.arange(n_test) + 100) % 256, 28 * 28).reshape(n_test, 28, 28)
    return train_x, np.arange(n_train) % 10, test_x, np.arange(n_test) % 10


def python2_pickle(obj) -> bytes:
    """``obj`` pickled as the CIFAR files are (Python 2 cPickle, protocol 2): bytes keys and the
    ``numpy.core.multiarray`` path that Python 2's numpy wrote."""
    return pickle.dumps(obj, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """N x 3 x 32 x 32 images as CIFAR's N x 3072 rows (all red, then green, then blue, row-major)."""
    return images.reshape(len(images), 3072).astype(np.uint8)


def write_cifar10(directory: Path, train_x, train_y, test_x, test_y) -> Path:
    """``data_batch_1..5``, ``test_batch`` and ``batches.meta`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, (x, y) in enumerate(zip(np.array_split(train_x, 5), np.array_split(train_y, 5)), start=1):
        batch = {b"batch_label": f"training batch {i} of 5".encode(), b"labels": [int(v) for v in y], b"data": cifar_rows(x)}
        (directory / f"data_batch_{i}").write_bytes(python2_pickle(batch))
    test = {b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in test_y], b"data": cifar_rows(test_x)}
    (directory / "test_batch").write_bytes(python2_pickle(test))
    meta = {b"num_cases_per_batch": 10000, b"label_names": [b"airplane", b"automobile"], b"num_vis": 3072}
    (directory / "batches.meta").write_bytes(python2_pickle(meta))
    return directory


def write_cifar100(directory: Path, train_x, train_y, test_x, test_y) -> Path:
    """``train``, ``test`` and ``meta`` in ``directory`` (fine labels as given, coarse = fine // 5)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        batch = {
            b"filenames": [b"x.png"] * len(x),
            b"fine_labels": [int(v) for v in y],
            b"coarse_labels": [int(v) // 5 for v in y],
            b"data": cifar_rows(x),
        }
        (directory / name).write_bytes(python2_pickle(batch))
    (directory / "meta").write_bytes(python2_pickle({b"fine_label_names": [b"apple"] * 100}))
    return directory


def photo_like(width: int, height: int, seed: int = 0):
    """A PIL RGB image that compresses like a photo: a smooth random colour field plus pixel noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, (height // 25 + 2, width // 25 + 2, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(grid).resize((width, height), Image.BICUBIC), dtype=np.int16)
    return Image.fromarray(np.clip(field + rng.normal(0, 12, (height, width, 1)), 0, 255).astype(np.uint8))


def position_coded_image(width: int, height: int):
    """A PIL RGB image whose red channel rises linearly from 0 (left column) to 255 (right) and green from
    0 (top row) to 255 (bottom): a crop's box and mirroring can be read back from its pixels."""
    from PIL import Image

    red = np.round(np.linspace(0, 255, width))[None, :].repeat(height, 0)
    green = np.round(np.linspace(0, 255, height))[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([red, green, np.full_like(red, 128)], axis=-1).astype(np.uint8))
