"""The fast path for small datasets: a whole split as one uint8 tensor on the training device.

Per batch: gather by a seeded permutation, augment with batched tensor ops, convert and normalize. No
DataLoader and no worker processes. The tensor moves to a device once and stays cached there.
(``index_select`` and ``gather``, not advanced indexing: on CPU uint8 the latter is 10-100x slower.)

A training epoch never waits for the device: its permutation and every batch's augmentation numbers are
drawn on the CPU when it starts, in the order a batch-by-batch draw would take them (so the batches are
the same on every device, and as they were when each batch drew its own), and reach the device in one
copy from pinned memory that does not block. With ``seed=None`` the draws come from torch's global
generator, all of them before the epoch's first step.
"""

from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from shrink.datasets.base import WHOLE, DatasetInfo, Shard, Split, check_batch_size, check_sample_size


@dataclass(frozen=True)
class EpochDraws:
    """What a training epoch draws, one row per global batch: the examples (``order``, steps x batch) and,
    with augmentation, each example's window offsets (``top``, ``left``) and ``flip`` (None without flips)."""

    order: Tensor
    top: Tensor | None = None
    left: Tensor | None = None
    flip: Tensor | None = None

    @property
    def augmented(self) -> bool:
        return self.top is not None

    def to(self, device: torch.device) -> "EpochDraws":
        """These draws on ``device``: one copy of them all (packed in one tensor), from pinned memory and
        without blocking on a GPU."""
        drawn = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        packed = torch.cat([t.to(torch.int64) for t in drawn.values()], dim=1)
        if device.type == "cuda":
            packed = packed.pin_memory()
        moved = dict(zip(drawn, packed.to(device, non_blocking=True).split([t.shape[1] for t in drawn.values()], 1)))
        if "flip" in moved:
            moved["flip"] = moved["flip"].bool()
        return EpochDraws(**moved)


class TensorSplit(Split):
    """A split held in memory as ``images`` (uint8, N x C x H x W) and ``labels`` (int64, N).

    Training batches get a random crop of the image zero-padded by ``crop_padding`` pixels on each side
    (every offset in ``[0, 2 * crop_padding]`` equally likely, as torchvision's ``RandomCrop``) and, when
    ``hflip``, a horizontal flip with probability 1/2.
    """

    def __init__(
        self,
        info: DatasetInfo,
        split: str,
        split_hash: str,
        images: Tensor,
        labels: Tensor,
        *,
        crop_padding: int = 0,
        hflip: bool = False,
    ):
        super().__init__(info, split, split_hash)
        if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != info.input_shape:
            raise ValueError(
                f"{info.name} images must be uint8 of shape (N, {', '.join(map(str, info.input_shape))}), "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        if labels.shape != (len(images),):
            raise ValueError(f"{info.name}: {len(images)} images but labels of shape {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.long()
        self.crop_padding = crop_padding
        self.hflip = hflip
        self._devices: dict[torch.device, tuple[Tensor, Tensor, Tensor, Tensor]] = {}

    def __len__(self) -> int:
        return len(self.labels)

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
        n = len(self)
        if train and batch_size > n:
            raise ValueError(f"batch_size {batch_size} exceeds the {n} examples of {self.info.name}/{self.split}")
        if train:
            return self._train_batches(batch_size, device, seed, shard.of_batch(batch_size))
        return self._eval_batches(batch_size, device, shard.of_examples(n))

    def sample(self, n: int, *, seed: int, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
        check_sample_size(n, len(self), f"{self.info.name}/{self.split}")
        generator = torch.Generator().manual_seed(seed)
        images, labels, scale, shift = self._on(device)
        idx = torch.randperm(len(self), generator=generator)[:n].to(images.device)
        return self._normalize(self._center(images.index_select(0, idx)), scale, shift), labels.index_select(0, idx)

    def _eval_batches(self, batch_size: int, device, block: range) -> Iterator[tuple[Tensor, Tensor]]:
        images, labels, scale, shift = self._on(device)
        for start in range(block.start, block.stop, batch_size):
            end = min(start + batch_size, block.stop)
            x = self._center(images[start:end])
            yield self._normalize(x, scale, shift), labels[start:end]

    def _train_batches(self, batch_size: int, device, seed: int | None, part: slice) -> Iterator[tuple[Tensor, Tensor]]:
        """Global batches of one seeded permutation; ``part`` of each is this process's share."""
        images, labels, scale, shift = self._on(device)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        draws = self._epoch_draws(len(self) // batch_size, batch_size, generator).to(images.device)
        for step in range(len(draws.order)):
            idx = draws.order[step, part]
            x = self._crop_flip(images, idx, draws, step, part) if draws.augmented else images.index_select(0, idx)
            yield self._normalize(x, scale, shift), labels.index_select(0, idx)

    def _epoch_draws(self, steps: int, batch_size: int, generator: torch.Generator | None) -> "EpochDraws":
        """The permutation and, batch after batch, each batch's window offsets (top, left) and flips, drawn
        for whole global batches (the generator advances alike in every process of a data-parallel group)."""
        order = torch.randperm(len(self), generator=generator)[: steps * batch_size].view(steps, batch_size)
        if not (self.crop_padding or self.hflip):
            return EpochDraws(order)
        offsets, flips, high = [], [], 2 * self.crop_padding + 1
        for _ in range(steps):
            offsets += [torch.randint(0, high, (batch_size,), generator=generator) for _ in ("top", "left")]
            if self.hflip:
                flips.append(torch.rand(batch_size, generator=generator) < 0.5)
        offsets = torch.stack(offsets).view(steps, 2, batch_size)
        return EpochDraws(order, offsets[:, 0], offsets[:, 1], torch.stack(flips) if flips else None)

    def _crop_flip(self, padded: Tensor, idx: Tensor, draws: "EpochDraws", step: int, part: slice) -> Tensor:
        """The batch's padded images (``idx``: this process's ``part`` of it), then one gather of the
        drawn window per image, mirrored where flipped."""
        _, height, width = self.info.input_shape
        b, dev = len(idx), padded.device
        channels, padded_height, padded_width = padded.shape[1:]
        top, left = draws.top[step, part, None], draws.left[step, part, None]
        cols = torch.arange(width, device=dev).expand(b, width)
        if draws.flip is not None:
            cols = torch.where(draws.flip[step, part, None], width - 1 - cols, cols)
        rows = top + torch.arange(height, device=dev)
        window = (rows[:, :, None] * padded_width + (left + cols)[:, None, :]).view(b, 1, height * width)
        images = padded.index_select(0, idx).view(b, channels, padded_height * padded_width)
        return images.gather(2, window.expand(b, channels, height * width)).view(b, channels, height, width)

    def _center(self, x: Tensor) -> Tensor:
        p = self.crop_padding
        return x[:, :, p : x.shape[2] - p, p : x.shape[3] - p] if p else x

    @staticmethod
    def _normalize(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        return x.float().mul_(scale).sub_(shift)

    def _on(self, device: str | torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Images (padded once for cropping), labels and normalization constants on ``device``, cached. Made
        outside inference mode even when the first call is an evaluation's: tensors made inside it are
        inference tensors, which training may not use later."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device not in self._devices:
            with torch.inference_mode(False):
                images = self.images.to(device)
                if self.crop_padding:
                    images = F.pad(images, (self.crop_padding,) * 4)
                mean = torch.tensor(self.info.mean, device=device).view(-1, 1, 1)
                std = torch.tensor(self.info.std, device=device).view(-1, 1, 1)
                self._devices[device] = (images, self.labels.to(device), 1 / (255 * std), mean / std)
        return self._devices[device]
