"""Synthetic CIFAR-10 for the benchmarks: random images written in the real python pickle format, and
the per-item PIL dataset that torchvision's CIFAR10 amounts to (the baseline both benches compare with)."""

import pickle
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset


def write_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """Random images in CIFAR-10's pickle layout under ``root/cifar-10-batches-py`` (five training
    batches and a test batch); returns the training images (N x 32 x 32 x 3 uint8, as torchvision's
    CIFAR10 holds them) and their labels."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = rng.integers(0, 256, (n_train + n_test, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, n_train + n_test).tolist()
    bounds = [n_train * i // 5 for i in range(6)] + [n_train + n_test]
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, start, end in zip(names, bounds, bounds[1:]):
        (folder / name).write_bytes(pickle.dumps({b"data": data[start:end], b"labels": labels[start:end]}))
    return data[:n_train].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels[:n_train]


class PILImages(Dataset):
    """HWC uint8 images served one at a time as PIL images through ``transform``, as torchvision's
    CIFAR10 does (minus its MD5 check of the official files)."""

    def __init__(self, images: np.ndarray, labels, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])
