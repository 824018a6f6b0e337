"""The fast path for small datasets: a whole split as one uint8 tensor on the training device.

Per batch: gather by a seeded permutation, augment with batched tensor ops, convert and normalize. No
DataLoader and no worker processes. The tensor moves to a device once and stays cached there.
(``index_select`` and ``gather``, not advanced indexing: on CPU uint8 the latter is 10-100x slower.)
"""

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from shrink.datasets.base import WHOLE, DatasetInfo, Shard, Split, check_batch_size, check_sample_size


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
        order = torch.randperm(len(self), generator=generator).to(images.device)
        for start in range(0, len(self) - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            if self.crop_padding or self.hflip:
                x = self._crop_flip(images, idx, generator, part)
            else:
                x = images.index_select(0, idx[part])
            yield self._normalize(x, scale, shift), labels.index_select(0, idx[part])

    def _crop_flip(self, padded: Tensor, idx: Tensor, generator: torch.Generator | None, part: slice) -> Tensor:
        """The ``part`` of the batch's padded images, then one gather of a random window per image, mirrored
        where flipped. Offsets and flips are drawn for the whole batch (the generator advances alike in
        every process of a data-parallel group) and then cut to ``part``."""
        _, height, width = self.info.input_shape
        b, p, dev = len(idx), self.crop_padding, padded.device
        channels, padded_height, padded_width = padded.shape[1:]
        top = torch.randint(0, 2 * p + 1, (b, 1), generator=generator)[part].to(dev)
        left = torch.randint(0, 2 * p + 1, (b, 1), generator=generator)[part].to(dev)
        flip = (torch.rand(b, 1, generator=generator) < 0.5)[part].to(dev) if self.hflip else None
        idx = idx[part]
        b = len(idx)
        cols = torch.arange(width, device=dev).expand(b, width)
        if flip is not None:
            cols = torch.where(flip, width - 1 - cols, cols)
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
