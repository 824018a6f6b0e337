"""What every dataset shares: its description, the ``Split`` contract, the errors, where files are looked for."""

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import torch
from torch import Tensor

from shrink.cache import cache_root

SPLITS = ("train", "val", "test")
FAMILIES = ("mnist", "cifar", "imagenet", "digits")


@dataclass(frozen=True)
class DatasetInfo:
    """A named dataset: image shape ``(C, H, W)``, class count, per-channel normalization, family, and
    the training augmentation in words."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    family: str
    augmentation: str
    source: str

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: unknown family {self.family!r}; families: {', '.join(FAMILIES)}")


class Decode(StrEnum):
    """Where an image-file split decodes its images: ``cpu``, libjpeg-turbo in its DataLoader workers;
    ``gpu``, on the device its batches land on (nvJPEG on CUDA), the workers only reading bytes."""

    CPU = "cpu"
    GPU = "gpu"


DECODE_CHOICES = ("auto", *Decode)
"""What a trial's ``decode`` setting may say; ``auto`` is resolved by :func:`resolve_decode`."""


def resolve_decode(choice: str, device_type: str, jpeg_engine: bool | None) -> Decode:
    """The decoding place for the setting ``choice`` (``DECODE_CHOICES``) on a ``device_type`` device
    (``cpu``, ``cuda``) whose hardware JPEG engine is ``jpeg_engine`` (None: unknown).

    ``auto`` decodes on the GPU only where it has a JPEG engine (A100, H100 class): without one, nvJPEG
    decodes Huffman on the calling thread, one image at a time, slower than libjpeg-turbo in the trial's
    CPU workers. ``ValueError`` for another choice, and for ``gpu`` off CUDA."""
    if choice not in DECODE_CHOICES:
        raise ValueError(f"decode must be one of {', '.join(DECODE_CHOICES)}, got {choice!r}")
    if choice == Decode.GPU and device_type != "cuda":
        raise ValueError(f"decode 'gpu' needs a CUDA device, not {device_type!r}; use 'cpu' or 'auto'")
    if choice == "auto":
        return Decode.GPU if device_type == "cuda" and jpeg_engine is True else Decode.CPU
    return Decode(choice)


class UnknownDataset(ValueError):
    """A dataset name that shrink does not know."""


class DatasetNotFound(FileNotFoundError):
    """A dataset's files are in none of the places searched; the message says where and how to provide them."""


class DatasetFormatError(ValueError):
    """A dataset file that exists but is not in the expected format."""


@dataclass(frozen=True)
class Shard:
    """The share of a split that one of ``count`` data-parallel processes reads (``index`` 0-based).

    Training: ``batch_size`` is the global batch; each process takes the contiguous ``batch_size //
    count`` examples at its position in each global batch of the one seeded permutation, and augmentation
    is drawn for the global batch, so the union over processes is exactly the single-process epoch.
    Evaluation: each process reads one contiguous block of the split; the blocks cover every example once.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in [0, {self.count}), got {self.index}")

    def of_batch(self, batch_size: int) -> slice:
        """This process's positions in a global training batch of ``batch_size``."""
        if batch_size % self.count:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {self.count} processes sharing it")
        per = batch_size // self.count
        return slice(self.index * per, (self.index + 1) * per)

    def of_examples(self, n: int) -> range:
        """This process's block of an ``n``-example split read once in a fixed order."""
        return range(n * self.index // self.count, n * (self.index + 1) // self.count)


WHOLE = Shard()


class Split(ABC):
    """One split (``train``, ``val`` or ``test``) of a dataset, ready to be batched.

    ``split_hash`` identifies the train/validation carve-out that ``train`` and ``val`` come from; the
    three splits of one ``load`` configuration share it.
    """

    def __init__(self, info: DatasetInfo, split: str, split_hash: str):
        self.info = info
        self.split = split
        self.split_hash = split_hash

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def batches(
        self,
        batch_size: int,
        *,
        train: bool,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        shard: Shard = WHOLE,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Normalized float32 images and int64 labels, ``batch_size`` at a time, on ``device``.

        ``train=True`` shuffles (seeded by ``seed``; ``None`` draws from torch's global generator),
        augments, and drops the last incomplete batch; otherwise every example once, in a fixed order,
        without augmentation. With a ``shard`` of a data-parallel group, only this process's share (see
        :class:`Shard`): ``batch_size // shard.count`` examples of each global training batch, or its block
        of an evaluation pass.
        """

    @abstractmethod
    def sample(self, n: int, *, seed: int, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
        """``n`` distinct examples drawn with ``seed``, normalized, without augmentation."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.info.name}/{self.split}: {len(self)} examples, split {self.split_hash}>"


def check_batch_size(batch_size: int) -> None:
    """``ValueError`` unless ``batch_size`` is a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def check_sample_size(n: int, available: int, what: str) -> None:
    """``ValueError`` unless ``1 <= n <= available``."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= available:
        raise ValueError(f"sample size must be an integer in [1, {available}] for {what}, got {n!r}")


def search_dirs(name: str, root: str | os.PathLike | None, system_dirs: tuple[Path, ...] = ()) -> list[Path]:
    """Where dataset ``name`` is looked for, in order: ``root`` and ``root/<name>`` when given,
    ``$SHRINK_DATA/<name>``, ``$SHRINK_CACHE/<name>`` (default ``~/.cache/shrink/<name>``), then
    ``system_dirs`` (e.g. a Debian package's directory)."""
    dirs = [Path(root), Path(root) / name] if root is not None else []
    if os.environ.get("SHRINK_DATA"):
        dirs.append(Path(os.environ["SHRINK_DATA"]) / name)
    dirs.append(cache_root() / name)
    dirs.extend(system_dirs)
    return dirs
