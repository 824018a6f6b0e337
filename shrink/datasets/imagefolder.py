"""ImageNet (ILSVRC 2012) as an ImageFolder tree, read by persistent DataLoader workers.

Layout: ``train/<class>/<image>`` and ``val/<class>/<image>`` with the same class folders; ``val/`` is
the test split and the train/validation carve-out comes from ``train/``. Classes are the folder names in
sorted order; a split's ``info.num_classes`` is the number of class folders found, so a subset of
ImageNet works too, and a class folder may be empty (its class index stays). Training: ``RandomResizedCrop(224)`` (scale 0.08-1, ratio 3/4-4/3) and a horizontal
flip with probability 1/2; evaluation: ``Resize(256)`` then ``CenterCrop(224)``. Decoding and augmentation
live in ``shrink.datasets.images`` (libjpeg-turbo in the workers on the CPU, nvJPEG on a CUDA device);
torchvision is imported only when a split is opened.
"""

import hashlib
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

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

MAX_WORKERS = 8
"""DataLoader worker processes per split and mode (training or evaluation) at most; they persist across epochs."""
PREFETCH = 2
"""Batches each worker prepares ahead."""


class _Examples(Dataset):
    """``(index, draws)`` -> ``(prepare(path, draws), label)`` for the ``index``-th ``(path, label)`` sample."""

    def __init__(self, samples: list[tuple[str, int]], prepare: Callable[[str, Sequence[float]], object]):
        self.samples = samples
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, Sequence[float]]) -> tuple[object, int]:
        index, draws = key
        path, label = self.samples[index]
        return self.prepare(path, draws), label


class _Batches(Sampler):
    """Batches of ``(index, draws)`` pairs for one process of a data-parallel group (``shard``).

    Training: the global batches (``batch_size``) of one permutation drawn from ``seed`` (set before each
    epoch), the last incomplete one dropped, each cut to the shard's positions; ``draws`` are the example's
    augmentation numbers (``images.DRAWS`` uniforms), drawn for the whole global batch from the same
    generator, so shards together are exactly the single-process epoch. Evaluation: the shard's block of
    indices in order, ``batch_size`` at a time, without draws.
    """

    def __init__(self, n: int, batch_size: int, train: bool, shard: Shard):
        self.n, self.batch_size, self.train, self.shard = n, batch_size, train, shard
        self.seed = 0

    def __len__(self) -> int:
        if self.train:
            return self.n // self.batch_size
        return math.ceil(len(self.shard.of_examples(self.n)) / self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, Sequence[float]]]]:
        from shrink.datasets import images

        if not self.train:
            block = self.shard.of_examples(self.n)
            for start in range(block.start, block.stop, self.batch_size):
                yield [(i, ()) for i in range(start, min(start + self.batch_size, block.stop))]
            return
        part = self.shard.of_batch(self.batch_size)
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(self.n, generator=generator)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            indices = order[start : start + self.batch_size].tolist()
            draws = torch.rand(self.batch_size, images.DRAWS, generator=generator, dtype=torch.float64).tolist()
            yield list(zip(indices[part], draws[part], strict=True))


@dataclass
class _Loader:
    """A persistent ``DataLoader`` for one split, mode, batch size, shard and decoding place, and the
    iteration that owns it (a newer ``batches`` call takes it over)."""

    key: tuple[int, bool, Shard, bool]
    order: _Batches
    loader: DataLoader
    owner: object = None


class ImageFolderSplit(Split):
    """A split given as ``(image path, label)`` pairs, batched by a ``DataLoader`` with ``workers`` processes.

    On the CPU, workers decode, crop and resize, and batches are normalized in the calling process. On a
    CUDA device, workers only read the files; decoding (nvJPEG), cropping, resizing and normalization run
    on the device. Each of training and evaluation keeps its workers across epochs: one iteration of
    ``batches`` per mode at a time (once a newer one starts, an older one raises at its next step).
    """

    def __init__(
        self, info: DatasetInfo, split: str, split_hash: str, samples: list[tuple[str, int]], *, workers: int
    ):
        super().__init__(info, split, split_hash)
        self.samples = samples
        self.workers = workers
        self._loaders: dict[bool, _Loader] = {}
        self._constants: dict[torch.device, tuple[Tensor, Tensor]] = {}  # mean and std on each device

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
        if train:
            shard.of_batch(batch_size)  # a global batch the processes cannot share equally: refused now
        device = torch.device(device)
        if seed is None and train:
            seed = int(torch.randint(0, 2**62, ()).item())
        return self._epoch(self._loader(batch_size, train, shard, device.type == "cuda"), device, seed)

    def sample(self, n: int, *, seed: int, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
        from shrink.datasets import images

        check_sample_size(n, len(self), f"{self.info.name}/{self.split}")
        picked = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].tolist()
        x = torch.stack([images.load_eval(self.samples[i][0]) for i in picked]).to(device)
        y = torch.tensor([self.samples[i][1] for i in picked], device=device)
        return self._normalize(x), y

    def _loader(self, batch_size: int, train: bool, shard: Shard, on_device: bool) -> _Loader:
        """The persistent loader for this mode, rebuilt (ending the old workers) when the batch size, the
        shard or the decoding place changes."""
        from shrink.datasets import images

        key = (batch_size, train, shard, on_device)
        current = self._loaders.get(train)
        if current is not None and current.key == key:
            return current
        if on_device:
            prepare, collate = partial(images.load_encoded, train=train), images.collate_encoded
        else:
            prepare, collate = (images.load_train if train else images.load_eval), None
        order = _Batches(len(self), batch_size, train, shard)
        loader = DataLoader(
            _Examples(self.samples, prepare),
            batch_sampler=order,
            collate_fn=collate,
            num_workers=self.workers,
            persistent_workers=self.workers > 0,
            prefetch_factor=PREFETCH if self.workers > 0 else None,
            pin_memory=on_device,
        )
        self._loaders[train] = _Loader(key, order, loader)
        return self._loaders[train]

    def _epoch(self, loader: _Loader, device: torch.device, seed: int | None) -> Iterator[tuple[Tensor, Tensor]]:
        from shrink.datasets import images

        loader.owner = token = object()
        loader.order.seed = seed or 0
        train = loader.order.train
        for batch in loader.loader:
            if isinstance(batch, images.EncodedBatch):
                x, y = images.device_images(batch, device, train=train), batch.labels.to(device, non_blocking=True)
            else:
                x, y = batch[0].to(device, non_blocking=True), batch[1].to(device)
            yield self._normalize(x), y
            if loader.owner is not token:
                raise RuntimeError(
                    f"{self.info.name}/{self.split}: a newer batches(train={train}) call took over this "
                    "split's loader; iterate one at a time"
                )

    def _normalize(self, x: Tensor) -> Tensor:
        """``x`` normalized with the dataset's mean and std, made on its device once (each copy to a GPU
        would wait for it)."""
        from shrink.datasets import images

        if x.device not in self._constants:
            self._constants[x.device] = tuple(torch.tensor(values, device=x.device).view(-1, 1, 1)
                                              for values in (self.info.mean, self.info.std))
        return images.normalize(x, *self._constants[x.device])


class ImageFolderSource(Source):
    """A dataset stored as ``train/`` and ``val/`` ImageFolder trees."""

    def find(self, directory: Path) -> Path | None:
        return directory if (directory / "train").is_dir() and (directory / "val").is_dir() else None

    def open(self, path: Path, split: str, *, val_fraction: float, split_seed: int, cpus: int | None = None) -> Split:
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
        return ImageFolderSplit(replace(self.info, num_classes=len(classes)), split, identity, samples,
                                workers=loader_workers(cpus))

    def fingerprint(self, path: Path) -> str:
        return _tree_fingerprint(path)


def loader_workers(cpus: int | None) -> int:
    """Worker processes of each of a split's loaders: one per CPU of the reader's share (``cpus``; default
    every CPU this process may run on), at most ``MAX_WORKERS``. One loader reads at a time (a trial trains,
    then evaluates), so a trial's decoding keeps its own CPUs busy, not the node's."""
    return min(MAX_WORKERS, cpus or len(os.sched_getaffinity(0)))


def class_count(path: Path) -> int:
    """The number of class folders under ``path/train`` (cheap: one directory listing)."""
    return sum(1 for entry in os.scandir(path / "train") if entry.is_dir())


@lru_cache(maxsize=4)
def _tree_fingerprint(path: Path) -> str:
    """sha256 of ``<relative path>\t<size>`` of every file under ``train/`` and ``val/``, in sorted order."""
    digest = hashlib.sha256()
    for part in ("train", "val"):
        for folder, dirs, files in os.walk(path / part):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(folder, name)
                digest.update(f"{os.path.relpath(full, path)}\t{os.path.getsize(full)}\n".encode())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=4)
def _scan(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names and ``(path, label)`` pairs of an ImageFolder tree; the last few scans stay cached."""
    from torchvision.datasets import ImageFolder

    print(f"shrink: scanning {folder} ...", file=sys.stderr, flush=True)
    tree = ImageFolder(folder, allow_empty=True)
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
