"""A dataset's fingerprint names its data, wherever and however the files are stored."""

import os
import re
import shutil

from PIL import Image

from helpers import position_coded_mnist, write_mnist
from shrink import datasets


def test_array_fingerprint_is_the_data_not_the_storage(tmp_path):
    arrays = position_coded_mnist()
    gzipped = write_mnist(tmp_path / "a", *arrays, gzipped=(True,) * 4)
    raw = write_mnist(tmp_path / "b", *arrays, gzipped=(False,) * 4)
    train_x, train_y, test_x, test_y = arrays
    relabelled = write_mnist(tmp_path / "c", train_x, (train_y + 1) % 10, test_x, test_y)
    a, b, c = (datasets.fingerprint("mnist", root) for root in (gzipped, raw, relabelled))
    assert re.fullmatch(r"[0-9a-f]{16}", a)
    assert a == b
    assert c != a


def write_tree(root, counts: dict[str, tuple[int, int]]):
    """train/<class> and val/<class> with the given numbers of 8x8 JPEGs (0: an empty class folder)."""
    for name, (n_train, n_val) in counts.items():
        for part, n in (("train", n_train), ("val", n_val)):
            (root / part / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (i * 40 % 256, 0, 0)).save(root / part / name / f"{i}.JPEG")
    return root


def test_tree_fingerprint_is_names_and_sizes_not_times_or_place(tmp_path):
    tree = write_tree(tmp_path / "one", {"n01": (3, 1), "n02": (2, 0), "n03": (0, 1)})
    copy = shutil.copytree(tree, tmp_path / "two")
    os.utime(copy / "train" / "n01" / "0.JPEG", (0, 0))
    assert datasets.class_count("imagenet", tree) == 3
    assert datasets.fingerprint("imagenet", tree) == datasets.fingerprint("imagenet", copy)
    (copy / "train" / "n02" / "1.JPEG").unlink()
    moved = shutil.copytree(copy, tmp_path / "three")  # the first answer for `copy` stays cached in this process
    assert datasets.fingerprint("imagenet", moved) != datasets.fingerprint("imagenet", tree)


def test_empty_class_folders_keep_their_class_index(tmp_path):
    tree = write_tree(tmp_path / "t", {"n01": (2, 1), "n02": (0, 0), "n03": (2, 1)})
    test = datasets.load("imagenet", "test", root=tree, val_fraction=0.5)
    assert test.info.num_classes == 3
    assert sorted(label for _, label in test.samples) == [0, 2]
