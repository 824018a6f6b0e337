"""scikit-learn's 8x8 digits: the fixed test carve-out, the train/val carve-out, and a model that learns from it."""

import importlib.util

import pytest
import torch

from shrink import datasets, models

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None, reason="digits come with scikit-learn (pip install 'shrink[digits]')"
)


def labels(split) -> list[int]:
    return [v for _, y in split.batches(512, train=False) for v in y.tolist()]


def test_split_sizes_per_class():
    train, val, test = (datasets.load("digits", s) for s in ("train", "val", "test"))
    # 1,797 images, per class [178, 182, 177, 183, 181, 182, 181, 179, 174, 180];
    # test: floor(0.2 n + 0.5) per class; val: floor(0.1 n + 0.5) of what is left
    assert torch.bincount(torch.tensor(labels(test))).tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
    assert torch.bincount(torch.tensor(labels(val))).tolist() == [14, 15, 14, 15, 15, 15, 15, 14, 14, 14]
    assert (len(train), len(val), len(test)) == (1293, 145, 359)
    assert train.info.input_shape == (1, 8, 8) and train.info.family == "digits"


def test_split_hash_is_stable_and_tracks_seed_and_fraction():
    assert datasets.load("digits", "val").split_hash == "f9ee06428127"
    assert datasets.load("digits", "val", split_seed=1).split_hash != "f9ee06428127"
    assert datasets.load("digits", "val", val_fraction=0.2).split_hash != "f9ee06428127"


def test_normalization_constants_are_those_of_the_training_pool():
    pixels = torch.cat(
        [x.flatten() for s in ("train", "val") for x, _ in datasets.load("digits", s).batches(512, train=False)]
    )
    info = datasets.info("digits")
    raw = pixels * info.std[0] + info.mean[0]
    assert raw.mean().item() == pytest.approx(info.mean[0], abs=1e-4)
    assert raw.std().item() == pytest.approx(info.std[0], abs=1e-4)


@pytest.fixture
def one_thread():
    """A tiny model trains several times faster on one thread than on two busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_small_mlp_learns_digits_through_the_fast_path(one_thread):
    torch.manual_seed(0)
    train, val = datasets.load("digits", "train"), datasets.load("digits", "val")
    model = models.create("small-mlp", input_shape=train.info.input_shape)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(5):
        for x, y in train.batches(32, train=True, seed=epoch):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    with torch.no_grad():
        correct = sum((model(x).argmax(1) == y).sum().item() for x, y in val.batches(64, train=False))
    assert correct / len(val) > 0.9
