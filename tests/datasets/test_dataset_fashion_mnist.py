"""Fashion-MNIST from Debian's dataset-fashion-mnist package, when installed."""

from pathlib import Path

import pytest
import torch

from shrink import datasets

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(not DEBIAN.is_dir(), reason=f"{DEBIAN} absent (apt-get install dataset-fashion-mnist)")


def test_debian_files_are_found_and_split():
    assert datasets.locate("fashion-mnist") == DEBIAN
    train, val, test = (datasets.load("fashion-mnist", s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (54_000, 6_000, 10_000)
    val_labels = torch.cat([y for _, y in val.batches(1000, train=False)])
    assert torch.bincount(val_labels).tolist() == [600] * 10
    test_labels = torch.cat([y for _, y in test.batches(1000, train=False)])
    assert test_labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]


def test_normalization_constants_match_the_training_images():
    train, val = datasets.load("fashion-mnist", "train"), datasets.load("fashion-mnist", "val")
    counts = torch.bincount(torch.cat([train.images.flatten(), val.images.flatten()]), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    mean = (counts * values).sum() / counts.sum()
    std = ((counts * (values - mean) ** 2).sum() / counts.sum()).sqrt()
    assert counts.sum() == 60_000 * 28 * 28
    assert mean.item() == pytest.approx(train.info.mean[0], abs=1e-4)
    assert std.item() == pytest.approx(train.info.std[0], abs=1e-4)
