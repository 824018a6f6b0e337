"""CIFAR-10 and CIFAR-100 read from python pickle batches through load()."""

import os
import pickle

import numpy as np
import pytest
import torch
from helpers import python2_pickle, write_cifar10, write_cifar100

from shrink import datasets


def cifar_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def raw(split, x: torch.Tensor) -> np.ndarray:
    """Normalized images back to bytes."""
    mean = torch.tensor(split.info.mean).view(3, 1, 1)
    std = torch.tensor(split.info.std).view(3, 1, 1)
    return (((x * std + mean) * 255).round()).to(torch.uint8).numpy()


def eval_bytes(split) -> np.ndarray:
    return np.concatenate([raw(split, x) for x, _ in split.batches(32, train=False)])


@pytest.fixture
def cifar10_root(tmp_path):
    train_x, test_x = cifar_images(100, 0), cifar_images(20, 1)
    train_y, test_y = np.arange(100) % 10, np.arange(20) % 10
    write_cifar10(tmp_path / "cifar-10-batches-py", train_x, train_y, test_x, test_y)
    return tmp_path, train_x, train_y, test_x, test_y


def test_cifar10_found_in_its_archive_folder(cifar10_root):
    root = cifar10_root[0]
    assert datasets.locate("cifar10", root) == root / "cifar-10-batches-py"


def test_cifar10_images_keep_channel_and_pixel_layout(cifar10_root):
    root, train_x, train_y, test_x, test_y = cifar10_root
    test = datasets.load("cifar10", "test", root=root)
    assert np.array_equal(eval_bytes(test), test_x)
    assert [v for _, y in test.batches(32, train=False) for v in y.tolist()] == test_y.tolist()


def test_cifar10_train_and_val_partition_the_five_batches(cifar10_root):
    root, train_x, train_y, *_ = cifar10_root
    train, val = datasets.load("cifar10", "train", root=root), datasets.load("cifar10", "val", root=root)
    assert (len(train), len(val)) == (90, 10)
    together = np.concatenate([eval_bytes(train), eval_bytes(val)])
    assert sorted(map(bytes, together)) == sorted(map(bytes, train_x))
    assert sorted(y for _, ys in val.batches(32, train=False) for y in ys.tolist()) == list(range(10))


def test_cifar10_training_batches_are_cropped_and_flipped(cifar10_root):
    root, train_x, *_ = cifar10_root
    train = datasets.load("cifar10", "train", root=root)
    x, _ = next(train.batches(64, train=True, seed=0))
    assert x.shape == (64, 3, 32, 32)
    originals = {bytes(image) for image in train_x}
    changed = sum(bytes(image) not in originals for image in raw(train, x))
    assert changed > 48  # an image comes out unchanged with probability 1/162


def test_cifar100_uses_the_fine_labels(tmp_path):
    train_y, test_y = np.repeat(np.arange(100), 5), np.arange(100)
    write_cifar100(tmp_path, cifar_images(500, 2), train_y, cifar_images(100, 3), test_y)
    train, val, test = (datasets.load("cifar100", s, root=tmp_path) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (400, 100, 100)
    assert train.info.num_classes == 100
    assert [v for _, y in test.batches(50, train=False) for v in y.tolist()] == list(range(100))


def test_pickles_that_would_run_code_are_refused(cifar10_root):
    class Exploit:
        def __reduce__(self):
            return os.system, ("echo owned",)

    root = cifar10_root[0]
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(datasets.DatasetFormatError, match=r"test_batch is not a CIFAR python batch .*refusing to load posix.system"):
        datasets.load("cifar10", "test", root=root)


def test_batches_of_the_wrong_width_are_refused(cifar10_root):
    root = cifar10_root[0]
    bad = {b"labels": [0] * 10, b"data": np.zeros((10, 100), np.uint8)}
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(python2_pickle(bad))
    with pytest.raises(datasets.DatasetFormatError, match=r"test_batch: 'data' has shape \(10, 100\), expected \(N, 3072\)"):
        datasets.load("cifar10", "test", root=root)
