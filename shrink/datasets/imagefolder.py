"""ImageNet (ILSVRC 2012) as an ImageFolder tree, read by persistent DataLoader workers.

Layout: ``train/<class>/<image>`` and ``val/<class>/<image>`` with the same class folders; ``val/`` is
the test split and the train/validation carve-out comes from ``train/``. Classes are the folder names in
sorted order; a split's ``info.num_classes`` is the number of class folders found, so a subset of
ImageNet works too, and a class folder may be empty (its class index stays). Training: ``RandomResizedCrop(224)`` (scale 0.08-1, ratio 3/4-4/3) and a horizontal
flip with probability 1/2; evaluation: ``Resize(256)`` then ``CenterCrop(224)``. Decoding and augmentation
live in ``shrink.datasets.images`` (``Decode.CPU``: libjpeg-turbo in the workers; ``Decode.GPU``: nvJPEG on
the CUDA device, each batch prepared by a :class:`Prefetch` thread while the one before it trains);
torchvision is imported only when a split is opened.
"""

import hashlib
import math
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    Decode,
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


class Prefetch:
    """``prepare(item)`` of each item of ``source``, in order, each made on a background thread while the
    consumer works on the one before it; on a CUDA ``device`` the thread works on a side stream, and the
    consumer's stream waits for each result before it is handed over.

    An exception in the thread (``source``'s or ``prepare``'s, e.g. ``DatasetFormatError`` naming the file) is
    raised in the consumer at the item where it happened; :meth:`close`, also called when the iterator is
    exhausted, fails or is dropped (the thread holds no reference to it), stops the thread and waits for it.
    One item waits ready at most, so a batch's device memory stays bounded.

        >>> list(Prefetch(range(3), lambda i: i * i))
        [0, 1, 4]
    """

    def __init__(self, source: Iterable, prepare: Callable[[object], object], device: torch.device | None = None):
        self._ready: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        cuda = device is not None and device.type == "cuda"
        self._device = device if cuda else None
        stream = torch.cuda.Stream(device) if cuda else None
        self._thread = threading.Thread(target=_prefetch, args=(iter(source), prepare, stream, self._ready, self._stop),
                                        daemon=True, name="shrink-prefetch")
        self._thread.start()

    def __iter__(self) -> "Prefetch":
        return self

    def __next__(self):
        if self._stop.is_set():
            raise StopIteration
        item, event, error = self._ready.get()
        if error is not None or item is _END:
            self.close()
            if error is not None:
                raise error
            raise StopIteration
        if event is not None:  # the side stream's work on it is done before the consumer's stream reads it
            stream = torch.cuda.current_stream(self._device)
            stream.wait_event(event)
            for tensor in _tensors(item):
                tensor.record_stream(stream)
        return item

    def close(self) -> None:
        """Stop the thread (after the item it is preparing) and wait for it to end."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._ready.get(timeout=0.01)
            except queue.Empty:
                pass
        self._thread.join()

    def __del__(self) -> None:
        if hasattr(self, "_thread"):  # not when __init__ failed before starting it
            self.close()


_END = object()
"""What the prefetch thread hands over after the last item."""


def _prefetch(source: Iterator, prepare: Callable[[object], object], stream, ready: queue.Queue,
              stop: threading.Event) -> None:
    """:class:`Prefetch`'s thread: ``(prepared item, CUDA event or None, exception or None)`` into ``ready``
    for each item, then ``_END``; it returns once ``stop`` is set."""

    def hand_over(item, event=None, error: Exception | None = None) -> bool:
        while not stop.is_set():
            try:
                ready.put((item, event, error), timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    try:
        for item in source:
            if stop.is_set():
                return
            if stream is None:
                handed = hand_over(prepare(item))
            else:
                with torch.cuda.stream(stream):
                    prepared = prepare(item)
                    event = torch.cuda.Event()
                    event.record(stream)
                handed = hand_over(prepared, event)
            if not handed:
                return
        hand_over(_END)
    except Exception as error:  # noqa: BLE001 -- raised again in the consumer
        hand_over(None, error=error)


def _tensors(item) -> list[Tensor]:
    """The tensors of a batch: the item itself, or those in a tuple or list."""
    return [t for t in (item if isinstance(item, tuple | list) else (item,)) if isinstance(t, Tensor)]


@dataclass
class _Loader:
    """A persistent ``DataLoader`` for one split, mode, batch size, shard and pinning, the iteration that owns
    it (a newer ``batches`` call takes it over) and that iteration's :class:`Prefetch` (``decode=gpu``)."""

    key: tuple[int, bool, Shard, bool]
    order: _Batches
    loader: DataLoader
    owner: object = None
    prefetch: Prefetch | None = None


class ImageFolderSplit(Split):
    """A split given as ``(image path, label)`` pairs, batched by a ``DataLoader`` with ``workers`` processes.

    ``decode=Decode.CPU``: workers decode, crop and resize, and batches are normalized where they land.
    ``Decode.GPU``: workers only read the files; decoding (nvJPEG on CUDA; on the CPU, as tests run it,
    libjpeg-turbo), cropping, resizing and normalization run on the batches' device, on a :class:`Prefetch`
    thread one batch ahead. Each of training and evaluation keeps its workers across epochs: one iteration
    of ``batches`` per mode at a time (once a newer one starts, an older one raises at its next step).
    """

    def __init__(
        self, info: DatasetInfo, split: str, split_hash: str, samples: list[tuple[str, int]], *, workers: int,
        decode: Decode = Decode.CPU,
    ):
        super().__init__(info, split, split_hash)
        self.samples = samples
        self.workers = workers
        self.decode = decode
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
        if device.type == "cuda" and device.index is None:  # the key its tensors' ``.device`` has
            device = torch.device("cuda", torch.cuda.current_device())
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

    def _loader(self, batch_size: int, train: bool, shard: Shard, pin: bool) -> _Loader:
        """The persistent loader for this mode, rebuilt (ending the old workers) when the batch size, the
        shard or the pinning (batches bound for a CUDA device) changes."""
        from shrink.datasets import images

        key = (batch_size, train, shard, pin)
        current = self._loaders.get(train)
        if current is not None and current.key == key:
            return current
        if current is not None and current.prefetch is not None:
            current.prefetch.close()
        if self.decode is Decode.GPU:
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
            pin_memory=pin,
        )
        self._loaders[train] = _Loader(key, order, loader)
        return self._loaders[train]

    def _epoch(self, loader: _Loader, device: torch.device, seed: int | None) -> Iterator[tuple[Tensor, Tensor]]:
        if loader.prefetch is not None:  # an older iteration's thread: it must not read the workers any more
            loader.prefetch.close()
        loader.owner = token = object()
        loader.order.seed = seed or 0
        train = loader.order.train
        self._constants_on(device)  # made on the consumer's stream, before any thread reads them
        if self.decode is Decode.GPU:
            batches = loader.prefetch = Prefetch(loader.loader, partial(self._on_device, device=device, train=train),
                                                 device)
        else:
            batches = (self._landed(batch, device) for batch in loader.loader)
        try:
            for batch in batches:
                yield batch
                if loader.owner is not token:
                    raise RuntimeError(
                        f"{self.info.name}/{self.split}: a newer batches(train={train}) call took over this "
                        "split's loader; iterate one at a time"
                    )
        finally:
            if loader.owner is token and loader.prefetch is not None:
                loader.prefetch.close()
                loader.prefetch = None

    def _on_device(self, batch, device: torch.device, train: bool) -> tuple[Tensor, Tensor]:
        """``decode=gpu``: an ``EncodedBatch`` decoded, cropped and normalized on ``device``."""
        from shrink.datasets import images

        x = images.device_images(batch, device, train=train)
        return self._normalize(x), batch.labels.to(device, non_blocking=True)

    def _landed(self, batch: tuple[Tensor, Tensor], device: torch.device) -> tuple[Tensor, Tensor]:
        """``decode=cpu``: a batch of the workers' uint8 views on ``device``, normalized there."""
        return self._normalize(batch[0].to(device, non_blocking=True)), batch[1].to(device, non_blocking=True)

    def _normalize(self, x: Tensor) -> Tensor:
        """``x`` normalized with the dataset's mean and std."""
        from shrink.datasets import images

        return images.normalize(x, *self._constants_on(x.device))

    def _constants_on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The mean and std on ``device``, made there once (each copy to a GPU would wait for it)."""
        if device not in self._constants:
            self._constants[device] = tuple(torch.tensor(values, device=device).view(-1, 1, 1)
                                            for values in (self.info.mean, self.info.std))
        return self._constants[device]


class ImageFolderSource(Source):
    """A dataset stored as ``train/`` and ``val/`` ImageFolder trees."""

    def find(self, directory: Path) -> Path | None:
        return directory if (directory / "train").is_dir() and (directory / "val").is_dir() else None

    def open(self, path: Path, split: str, *, val_fraction: float, split_seed: int, cpus: int | None = None,
             decode: Decode = Decode.CPU) -> Split:
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
                                workers=loader_workers(cpus), decode=decode)

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
