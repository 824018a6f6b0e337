"""The stratified train/validation carve-out and its hash."""

import hashlib

import numpy as np
import pytest

from shrink.datasets.carve import split_hash, stratified

LABELS = np.array([0] * 30 + [1] * 10 + [2] * 5)


def test_carves_rounded_fraction_of_each_class():
    kept, carved = stratified(LABELS, 0.1, seed=0)
    # floor(0.1 * n + 0.5): 30 -> 3, 10 -> 1, 5 -> 1
    assert np.bincount(LABELS[carved]).tolist() == [3, 1, 1]
    assert np.bincount(LABELS[kept]).tolist() == [27, 9, 4]
    assert sorted(kept.tolist() + carved.tolist()) == list(range(45))
    assert kept.tolist() == sorted(kept.tolist()) and carved.tolist() == sorted(carved.tolist())


def test_same_seed_same_carve_other_seed_other_carve():
    assert np.array_equal(stratified(LABELS, 0.2, 7)[1], stratified(LABELS, 0.2, 7)[1])
    assert not np.array_equal(stratified(LABELS, 0.2, 7)[1], stratified(LABELS, 0.2, 8)[1])


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, "0.1", True])
def test_fraction_must_be_strictly_between_0_and_1(fraction):
    with pytest.raises(ValueError, match="val_fraction must be a number strictly between 0 and 1"):
        stratified(LABELS, fraction, 0)


def test_empty_validation_side_is_an_error():
    with pytest.raises(ValueError, match="fraction 0.1 of 3 examples leaves an empty side of the split"):
        stratified(np.array([0, 0, 0]), 0.1, 0)


def test_hash_follows_its_documented_recipe():
    expected = hashlib.sha256(
        b"toy|3|0.5|" + np.array([0, 2], "<i8").tobytes() + b"|" + np.array([1], "<i8").tobytes()
    ).hexdigest()[:12]
    assert split_hash("toy", 3, 0.5, np.array([2, 0]), np.array([1])) == expected


def test_hash_changes_with_each_ingredient():
    base = ("toy", 3, 0.5, np.array([0, 2]), np.array([1]))
    variants = [
        ("toy2", 3, 0.5, np.array([0, 2]), np.array([1])),
        ("toy", 4, 0.5, np.array([0, 2]), np.array([1])),
        ("toy", 3, 0.25, np.array([0, 2]), np.array([1])),
        ("toy", 3, 0.5, np.array([0, 1]), np.array([2])),
    ]
    hashes = {split_hash(*args) for args in [base, *variants]}
    assert len(hashes) == 5
