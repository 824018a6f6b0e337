"""ImageNet-style ImageFolder trees, decoded by torchvision in DataLoader workers."""

import pytest
import torch
from PIL import Image

from shrink import datasets

COLOURS = {"n01": (255, 0, 0), "n02": (0, 0, 255)}  # class folder -> solid colour


@pytest.fixture
def tree(tmp_path):
    """train/: 10 JPEGs per class, val/: 2 per class; 40x30 solid colours."""
    for part, count in (("train", 10), ("val", 2)):
        for name, colour in COLOURS.items():
            folder = tmp_path / "imagenet" / part / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (40, 30), colour).save(folder / f"{name}_{i}.JPEG", quality=95)
    return tmp_path / "imagenet"


def expected_pixel(colour, info):
    return torch.tensor([(c / 255 - m) / s for c, m, s in zip(colour, info.mean, info.std, strict=True)])


def test_splits_carve_train_and_use_val_as_test(tree):
    train, val, test = (datasets.load("imagenet", s, root=tree) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (18, 2, 4)
    assert train.info.num_classes == 2 and train.split_hash == test.split_hash


def test_eval_batches_resize_and_center_crop_in_order(tree):
    test = datasets.load("imagenet", "test", root=tree)
    batches = list(test.batches(3, train=False))
    assert [tuple(x.shape) for x, _ in batches] == [(3, 3, 224, 224), (1, 3, 224, 224)]
    x, y = torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])
    assert y.tolist() == [0, 0, 1, 1]
    for image, label in zip(x, y.tolist(), strict=True):
        colour = COLOURS[["n01", "n02"][label]]
        assert torch.allclose(image.mean((1, 2)), expected_pixel(colour, test.info), atol=0.05)


def test_training_batches_are_shuffled_augmented_and_full(tree):
    train = datasets.load("imagenet", "train", root=tree)
    first = [y.tolist() for _, y in train.batches(4, train=True, seed=1)]
    assert [len(b) for b in first] == [4, 4, 4, 4]  # 18 examples: the last 2 are dropped
    assert first == [y.tolist() for _, y in train.batches(4, train=True, seed=1)]
    x, _ = next(train.batches(4, train=True, seed=1))
    assert x.shape == (4, 3, 224, 224)


def test_sample_is_seeded(tree):
    val = datasets.load("imagenet", "val", root=tree)
    x, y = val.sample(2, seed=0)
    assert x.shape == (2, 3, 224, 224) and sorted(y.tolist()) == [0, 1]
    assert torch.equal(x, val.sample(2, seed=0)[0])


def test_train_and_val_must_have_the_same_classes(tree):
    (tree / "val" / "n03").mkdir()
    Image.new("RGB", (40, 30)).save(tree / "val" / "n03" / "x.JPEG")
    with pytest.raises(datasets.DatasetFormatError, match="val/ has 3 class folders and train/ 2; they must be the same"):
        datasets.load("imagenet", "test", root=tree)


def test_each_loader_has_a_worker_per_cpu_of_the_readers_share_at_most_8(tree):
    import os

    loaded = [datasets.load("imagenet", "train", root=tree, cpus=n) for n in (1, 3, 32)]
    assert [split.workers for split in loaded] == [1, 3, 8]
    assert datasets.load("imagenet", "val", root=tree).workers == min(8, len(os.sched_getaffinity(0)))
