"""MNIST-format datasets read from IDX files (gzipped and raw) through load()."""

import gzip

import numpy as np
import pytest
from helpers import idx_bytes, position_coded_mnist, write_mnist

from shrink import datasets


def image_ids(split) -> list[int]:
    """Each image's constant pixel value, recovered from the normalized batches (eval order)."""
    mean, std = split.info.mean[0], split.info.std[0]
    return [round((v * std + mean) * 255) for x, _ in split.batches(64, train=False) for v in x[:, 0, 0, 0].tolist()]


def labels(split) -> list[int]:
    return [v for _, y in split.batches(64, train=False) for v in y.tolist()]


def test_train_val_test_from_idx_files(tmp_path):
    root = write_mnist(tmp_path / "files", *position_coded_mnist(100, 20))
    train, val, test = (datasets.load("mnist", s, root=root) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (90, 10, 20)
    assert sorted(image_ids(train) + image_ids(val)) == list(range(100))
    assert image_ids(train) == sorted(image_ids(train))
    assert sorted(labels(val)) == list(range(10))  # one of each class: floor(0.1 * 10 + 0.5)
    assert image_ids(test) == list(range(100, 120)) and labels(test) == [i % 10 for i in range(20)]
    assert train.split_hash == val.split_hash == test.split_hash
    assert (train.split, val.split, test.split) == ("train", "val", "test")


def test_pixels_are_normalized_with_the_dataset_constants(tmp_path):
    root = write_mnist(tmp_path / "files", *position_coded_mnist(100, 20))
    x, _ = next(datasets.load("mnist", "test", root=root).batches(1, train=False))
    assert x.shape == (1, 1, 28, 28)
    assert np.allclose(x.numpy(), (100 / 255 - 0.1307) / 0.3081, atol=1e-6)


def test_raw_and_gzipped_files_read_alike(tmp_path):
    arrays = position_coded_mnist(100, 20)
    gz = datasets.load("mnist", "test", root=write_mnist(tmp_path / "gz", *arrays, gzipped=(True,) * 4))
    raw = datasets.load("mnist", "test", root=write_mnist(tmp_path / "raw", *arrays, gzipped=(False,) * 4))
    assert image_ids(gz) == image_ids(raw) == list(range(100, 120))


def test_other_seed_or_fraction_changes_the_carve_and_its_hash(tmp_path):
    root = write_mnist(tmp_path / "files", *position_coded_mnist(100, 20))
    base = datasets.load("mnist", "val", root=root)
    reseeded = datasets.load("mnist", "val", root=root, split_seed=1)
    wider = datasets.load("mnist", "val", root=root, val_fraction=0.2)
    assert image_ids(base) == image_ids(datasets.load("mnist", "val", root=root))
    assert image_ids(base) != image_ids(reseeded) and base.split_hash != reseeded.split_hash
    assert len(wider) == 20 and wider.split_hash not in (base.split_hash, reseeded.split_hash)


def test_a_file_that_is_not_idx_is_named(tmp_path):
    root = write_mnist(tmp_path / "files", *position_coded_mnist(100, 20))
    (root / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0d\x01garbage")
    with pytest.raises(datasets.DatasetFormatError, match=r"t10k-labels-idx1-ubyte is not an IDX file of unsigned bytes \(magic 00000d01\)"):
        datasets.load("mnist", "test", root=root)


def test_a_truncated_idx_file_is_named(tmp_path):
    root = write_mnist(tmp_path / "files", *position_coded_mnist(100, 20))
    data = idx_bytes(np.zeros((100, 28, 28), np.uint8))[:-5]
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(data))
    with pytest.raises(datasets.DatasetFormatError, match=r"declares shape \(100, 28, 28\) but holds 78395 values"):
        datasets.load("mnist", "train", root=root)


def test_labels_outside_the_classes_are_rejected(tmp_path):
    train_x, train_y, test_x, test_y = position_coded_mnist(100, 20)
    root = write_mnist(tmp_path / "files", train_x, train_y, test_x, test_y + 3)
    with pytest.raises(datasets.DatasetFormatError, match=r"mnist test labels in .* range over \[3, 12\], expected \[0, 9\]"):
        datasets.load("mnist", "test", root=root)


def test_image_and_label_counts_must_agree(tmp_path):
    train_x, train_y, test_x, test_y = position_coded_mnist(100, 20)
    root = write_mnist(tmp_path / "files", train_x, train_y[:99], test_x, test_y)
    with pytest.raises(datasets.DatasetFormatError, match=r"mnist training data in .*\(100, 1, 28, 28\) and 99 labels"):
        datasets.load("mnist", "train", root=root)
