"""ImageNet (ILSVRC 2012) as an ImageFolder tree, decoded by torchvision in DataLoader worker processes.

Layout: ``train/<class>/<image>`` and ``val/<class>/<image>`` with the same class folders; ``val/`` is
the test split and the train/validation carve-out comes from ``train/``. Classes are the folder names in
sorted order; a split's ``info.num_classes`` is the number of class folders found, so a subset of
ImageNet works too. Training: ``RandomResizedCrop(224)`` (scale 0.08-1, ratio 3/4-4/3) and a horizontal
flip with probability 1/2; evaluation: ``Resize(256)`` then ``CenterCrop(224)``. torchvision is imported
only when a split is opened.
"""

import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from shrink.datasets.base import (
    WHOLE,
    DatasetFormatError,
    DatasetInfo,
    Shard,
    Split,
    check_batch_size,
    check_sample_size,
)
from shrink.datasets.carve import split_hash, stratified
from shrink.datasets.source import Source

WORKERS = min(8, os.cpu_count() or 1)


def _transform(info: DatasetInfo, train: bool):
    from torchvision import transforms as T

    resize = [T.RandomResizedCrop(224), T.RandomHorizontalFlip()] if train else [T.Resize(256), T.CenterCrop(224)]
    return T.Compose([*resize, T.ToTensor(), T.Normalize(info.mean, info.std)])


class _Images(Dataset):
    def __init__(self, samples: list[tuple[str, int]], transform):
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        from torchvision.datasets.folder import default_loader

        path, label = self.samples[i]
        return self.transform(default_loader(path)), label


class _ShardedBatches:
    """Global batches of one permutation drawn from ``generator`` when iterated (as ``RandomSampler`` draws
    it, so the DataLoader's worker seeds come first), the last incomplete one dropped, cut to ``part``."""

    def __init__(self, n: int, batch_size: int, part: slice, generator: torch.Generator | None):
        self.n, self.batch_size, self.part, self.generator = n, batch_size, part, generator

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator).tolist()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start : start + self.batch_size][self.part]


class ImageFolderSplit(Split):
    """A split given as ``(image path, label)`` pairs, batched by a ``DataLoader`` with ``workers`` processes."""

    def __init__(
        self, info: DatasetInfo, split: str, split_hash: str, samples: list[tuple[str, int]], *, workers: int = WORKERS
    ):
        super().__init__(info, split, split_hash)
        self.samples = samples
        self.workers = workers

    def __len__(self) -> int:
        return len(self.samples)

    def batches(
        self,
        batch_size: int,
        *,
        train: bool,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        shard: Shard = WHOLE,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        check_batch_size(batch_size)
        if train and batch_size > len(self):
            raise ValueError(
                f"batch_size {batch_size} exceeds the {len(self)} examples of {self.info.name}/{self.split}"
            )
        device = torch.device(device)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        if train:
            sampler = _ShardedBatches(len(self), batch_size, shard.of_batch(batch_size), generator)
        else:
            block = shard.of_examples(len(self))
            sampler = [range(start, min(start + batch_size, block.stop))
                       for start in range(block.start, block.stop, batch_size)]
        loader = DataLoader(
            _Images(self.samples, _transform(self.info, train)),
            batch_sampler=sampler,
            num_workers=self.workers,
            generator=generator,
            pin_memory=device.type == "cuda",
        )
        return ((x.to(device, non_blocking=True), y.to(device)) for x, y in loader)

    def sample(self, n: int, *, seed: int, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
        check_sample_size(n, len(self), f"{self.info.name}/{self.split}")
        images = _Images(self.samples, _transform(self.info, train=False))
        picked = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].tolist()
        x, y = zip(*(images[i] for i in picked))
        return torch.stack(x).to(device), torch.tensor(y, device=device)


class ImageFolderSource(Source):
    """A dataset stored as ``train/`` and ``val/`` ImageFolder trees."""

    def find(self, directory: Path) -> Path | None:
        return directory if (directory / "train").is_dir() and (directory / "val").is_dir() else None

    def open(self, path: Path, split: str, *, val_fraction: float, split_seed: int) -> Split:
        classes, train = _scan(path / "train")
        kept, carved = stratified(np.array([label for _, label in train]), val_fraction, split_seed)
        identity = split_hash(self.info.name, split_seed, val_fraction, kept, carved)
        if split == "test":
            test_classes, samples = _scan(path / "val")
            if test_classes != classes:
                raise DatasetFormatError(
                    f"{path}: val/ has {len(test_classes)} class folders and train/ {len(classes)}; "
                    "they must be the same"
                )
        else:
            samples = [train[i] for i in (kept if split == "train" else carved)]
        return ImageFolderSplit(replace(self.info, num_classes=len(classes)), split, identity, samples)


@lru_cache(maxsize=4)
def _scan(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names and ``(path, label)`` pairs of an ImageFolder tree; the last few scans stay cached."""
    from torchvision.datasets import ImageFolder

    print(f"shrink: scanning {folder} ...", file=sys.stderr, flush=True)
    tree = ImageFolder(folder)
    return tree.classes, tree.samples


IMAGENET = ImageFolderSource(
    DatasetInfo(
        name="imagenet",
        input_shape=(3, 224, 224),
        num_classes=1000,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        family="imagenet",
        augmentation="RandomResizedCrop(224), horizontal flip p=0.5; evaluation Resize(256), CenterCrop(224)",
        source="Russakovsky et al. 2015, ImageNet Large Scale Visual Recognition Challenge (ILSVRC 2012)",
    ),
    needs="ILSVRC 2012 as train/<class>/*.JPEG and val/<class>/*.JPEG "
    "(no automatic download: its licence needs a sign-up)",
)
