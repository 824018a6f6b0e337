"""Decoding and augmenting ImageNet-style image files: on the CPU in DataLoader workers, or on a CUDA device.

Training: ``RandomResizedCrop(224)`` (area 0.08-1 of the image, aspect ratio 3/4-4/3) and a horizontal flip
with probability 1/2; evaluation: ``Resize(256)`` (shorter side) and ``CenterCrop(224)``. Both paths end
in 3x224x224 uint8 images; ``normalize`` turns a batch of them into float32 on the device the batch
lands on, vectorized over the batch (workers ship a quarter of the bytes, and float work is done per batch).

Decisions, measured on 500x375 quality-90 JPEGs (``bench/imagenet_data.py``):

- Decoding is libjpeg-turbo through ``torchvision.io.decode_image`` (``decode_jpeg`` for JPEG bytes; 1.1-1.2x
  PIL's speed): the same pixels as PIL (both use the accurate integer DCT and fancy chroma upsampling).
  Since torchvision 0.19 it converts grayscale and CMYK JPEGs and PNGs (ImageNet has a PNG named
  ``.JPEG``) to RGB itself, so no file needs a fallback decoder on the CPU. (torchvision 0.29 deprecates
  these functions, with a ``DeprecationWarning``, in favour of TorchCodec; they are still there.)
- The crop box is drawn on the decoded size and only the crop is resized: uint8, antialiased bilinear, on
  the decoder's channels-last memory with torch's vectorized uint8 kernel (copying to contiguous CHW first
  would make this step ~3x slower).
- Every example's crop and flip come from its own ``DRAWS`` uniform numbers, drawn with the epoch's seed by
  the sampler in the training process (vectorized; seeding a generator per image cost more than drawing
  its box), so augmentation depends neither on the number of workers nor on which process decodes: the
  CPU and CUDA paths make the same crops.
- Rejected: decoding at reduced size (DCT scaling, PIL's ``draft``) keeps the output only when the crop is
  at least twice 224 pixels in both sides, which a 500x375 image never has, so it changes the output
  distribution for typical ImageNet images; libjpeg-turbo's fast DCT and fast chroma upsampling (measured
  through simplejpeg) decode 1.3-1.5x faster but differ from PIL's pixels by up to 4 and 15 levels.
- On a CUDA device nvJPEG decodes baseline colour JPEGs, a batch at a time; the few other files (grayscale,
  CMYK, progressive, PNG, or not ending in an EOI marker, which includes truncated files) are decoded by
  libjpeg-turbo in the worker, so that every file decodes correctly and a broken one fails naming itself.
  When nvJPEG still rejects a batch, its files are decoded one by one, and libjpeg-turbo decodes any that
  nvJPEG rejects alone (:func:`decode_batch`): only a file neither decoder reads fails.
"""

import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

import torch
import torchvision.transforms.v2.functional as F
from PIL import Image
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image, decode_jpeg

from shrink.datasets.base import DatasetFormatError

SIZE = 224
"""Side of the square training and evaluation images."""
EVAL_RESIZE = 256
"""Evaluation resizes the shorter side to this before the central ``SIZE`` crop."""
SCALE = (0.08, 1.0)
"""Training crops cover this fraction of the image's area."""
RATIO = (3 / 4, 4 / 3)
"""Training crops have a width/height ratio in this range (drawn log-uniformly)."""


@dataclass(frozen=True)
class Crop:
    """A training crop of a decoded image, and whether it is mirrored after resizing."""

    top: int
    left: int
    height: int
    width: int
    flip: bool


ATTEMPTS = 10
"""Boxes drawn before falling back to the central crop."""
DRAWS = 2 * ATTEMPTS + 3
"""Uniform numbers in [0, 1) that one training crop consumes: an area and a ratio per attempt, the box's
top and left, and the flip."""


def train_crop(height: int, width: int, draws: Sequence[float]) -> Crop:
    """``RandomResizedCrop``'s box for a ``height`` x ``width`` image, and a flip with probability 1/2,
    from ``DRAWS`` uniform numbers.

    Up to ``ATTEMPTS`` draws of an area in ``SCALE`` and a log-uniform ratio in ``RATIO``; the first that
    fits is placed uniformly at random. If none fits, the largest central box whose ratio is clamped into
    ``RATIO``.
    """
    log_low, log_high = math.log(RATIO[0]), math.log(RATIO[1])
    for attempt in range(ATTEMPTS):
        area = height * width * (SCALE[0] + (SCALE[1] - SCALE[0]) * draws[2 * attempt])
        ratio = math.exp(log_low + (log_high - log_low) * draws[2 * attempt + 1])
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(draws[-3] * (height - h + 1)), int(draws[-2] * (width - w + 1))
            return Crop(top, left, h, w, draws[-1] < 0.5)
    if width / height < RATIO[0]:
        w, h = width, round(width / RATIO[0])
    elif width / height > RATIO[1]:
        w, h = round(height * RATIO[1]), height
    else:
        w, h = width, height
    return Crop((height - h) // 2, (width - w) // 2, h, w, draws[-1] < 0.5)


def read_bytes(path: str) -> Tensor:
    """The file's bytes as a 1-D uint8 tensor."""
    with open(path, "rb", buffering=0) as f:
        data = bytearray(os.fstat(f.fileno()).st_size)
        f.readinto(data)
    if not data:
        raise DatasetFormatError(f"{path}: the file is empty")
    return torch.frombuffer(data, dtype=torch.uint8)


def decode(data: Tensor, path: str) -> Tensor:
    """An encoded image (JPEG of any colour space, PNG, WebP, GIF) as 3 x H x W uint8 RGB, on the CPU.

    ``DatasetFormatError`` naming ``path`` when the bytes are not a whole image of a supported format.
    """
    try:
        return decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError as error:
        raise DatasetFormatError(f"{path}: cannot decode the image: {_reason(error)}") from None


def resized_crop(image: Tensor, crop: Crop) -> Tensor:
    """The ``crop`` of a 3 x H x W uint8 image resized to ``SIZE`` x ``SIZE`` (antialiased bilinear),
    mirrored if ``crop.flip``; on the image's device."""
    out = _to_size(_cropped(image, crop)[None])[0]
    return out.flip(-1) if crop.flip else out


def _cropped(image: Tensor, crop: Crop) -> Tensor:
    return image[:, crop.top : crop.top + crop.height, crop.left : crop.left + crop.width]


def _to_size(views: Tensor) -> Tensor:
    """N x 3 x h x w uint8 views resized to ``SIZE`` x ``SIZE`` (antialiased bilinear), on their device."""
    if views.is_cpu:  # torch's uint8 kernel directly: the same pixels as v2's resized_crop, ~1.4x faster
        return torch.nn.functional.interpolate(views, [SIZE, SIZE], mode="bilinear", antialias=True)
    return F.resize(views, [SIZE, SIZE], antialias=True)  # no uint8 antialiasing kernel on GPUs: float, rounded


def center(image: Tensor) -> Tensor:
    """The evaluation view of uint8 images, 3 x H x W or N x 3 x H x W: shorter side resized to
    ``EVAL_RESIZE`` (antialiased bilinear), then the central ``SIZE`` x ``SIZE`` crop; on their device."""
    return F.center_crop(F.resize(image, [EVAL_RESIZE], antialias=True), [SIZE, SIZE])


def by_shape(views: list[Tensor], transform: Callable[[Tensor], Tensor]) -> list[Tensor]:
    """``transform`` (of an N x C x H x W batch) applied to each of ``views`` (C x H x W), in order: views of one
    shape go through it as one batch (stacked channels-last, the decoders' layout), a view alone as itself.
    Per image the result is the same; a batch's kernels launch once per shape rather than once per image."""
    groups: dict[torch.Size, list[int]] = {}
    for i, view in enumerate(views):
        groups.setdefault(view.shape, []).append(i)
    out: list[Tensor | None] = [None] * len(views)
    for members in groups.values():
        if len(members) == 1:
            stacked = views[members[0]][None]
        else:
            stacked = torch.stack([views[i].permute(1, 2, 0) for i in members]).permute(0, 3, 1, 2)
        for i, result in zip(members, transform(stacked), strict=True):
            out[i] = result
    return out


def load_train(path: str, draws: Sequence[float]) -> Tensor:
    """The training view of the image file at ``path``, its crop and flip made from ``draws``."""
    image = decode(read_bytes(path), path)
    return resized_crop(image, train_crop(image.shape[1], image.shape[2], draws))


def load_eval(path: str, draws: Sequence[float] = ()) -> Tensor:
    """The evaluation view of the image file at ``path`` (``draws`` are unused: evaluation is not random)."""
    return center(decode(read_bytes(path), path))


def normalize(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 images ``(N, 3, H, W)`` as float32 ``(x / 255 - mean) / std``, on their device;
    ``mean`` and ``std`` are float tensors of shape ``(3, 1, 1)`` on the same device. (Converting first
    and scaling in place is ~2.5x faster on the CPU than one mixed-dtype ``addcmul``.)"""
    return images.float().mul_(1 / (255 * std)).sub_(mean / std)


@dataclass(frozen=True)
class Encoded:
    """One example read by a worker for the CUDA path: ``data`` is the file's bytes (1-D) when nvJPEG is
    to decode it, else the image already decoded on the CPU (3 x H x W); ``crop`` is set for training."""

    data: Tensor
    path: str
    crop: Crop | None

    @property
    def for_nvjpeg(self) -> bool:
        return self.data.dim() == 1


def load_encoded(path: str, draws: Sequence[float], *, train: bool) -> Encoded:
    """What a worker does for the CUDA path: read the file; decode it here only if nvJPEG may not (see
    the module's docstring); draw the crop from the header's image size."""
    data = read_bytes(path)
    height, width, nvjpeg = _probe(data, path)
    if not nvjpeg:
        data = decode(data, path)
    return Encoded(data, path, train_crop(height, width, draws) if train else None)


def _probe(data: Tensor, path: str) -> tuple[int, int, bool]:
    """Height and width from the file's header, and whether nvJPEG can decode it."""
    raw = data.numpy().tobytes()
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            nvjpeg = (
                image.format == "JPEG"
                and image.mode == "RGB"
                and not image.info.get("progressive")
                and raw.rstrip(b"\0").endswith(b"\xff\xd9")
            )
    except OSError as error:
        raise DatasetFormatError(f"{path}: cannot read the image's header: {error}") from None
    return height, width, nvjpeg


@dataclass(frozen=True)
class EncodedBatch:
    """A batch for the CUDA path in few tensors: each tensor a worker sends costs the training process
    ~0.4 ms to receive, one per file would cost more than the decoding it saves. ``jpegs`` holds the bytes
    of the files nvJPEG decodes, one after another; ``sizes`` gives each example's byte count there (0 for
    one decoded in the worker, in ``decoded`` in order); then each example's path, crop and label."""

    jpegs: Tensor
    sizes: list[int]
    decoded: list[Tensor]
    paths: list[str]
    crops: list[Crop | None]
    labels: Tensor

    def pin_memory(self) -> "EncodedBatch":
        """Page-locked copies, for asynchronous transfer (``DataLoader(pin_memory=True)`` calls this)."""
        return replace(self, jpegs=self.jpegs.pin_memory(), decoded=[d.pin_memory() for d in self.decoded],
                       labels=self.labels.pin_memory())


def collate_encoded(examples: list[tuple[Encoded, int]]) -> EncodedBatch:
    """``DataLoader`` collation for the CUDA path."""
    items = [e for e, _ in examples]
    files = [e.data for e in items if e.for_nvjpeg]
    return EncodedBatch(
        jpegs=torch.cat(files) if files else torch.empty(0, dtype=torch.uint8),
        sizes=[len(e.data) if e.for_nvjpeg else 0 for e in items],
        decoded=[e.data for e in items if not e.for_nvjpeg],
        paths=[e.path for e in items],
        crops=[e.crop for e in items],
        labels=torch.tensor([label for _, label in examples]),
    )


def device_images(batch: EncodedBatch, device: torch.device, *, train: bool) -> Tensor:
    """The batch's training (``train``) or evaluation views, as uint8 ``(N, 3, SIZE, SIZE)`` on the CUDA
    ``device``: nvJPEG decodes the files' bytes (:func:`decode_batch`), then the images are cropped and
    resized there, those of one shape (training: of one crop size) together (:func:`by_shape`)."""
    files = batch.jpegs.split([size for size in batch.sizes if size])
    names = [path for path, size in zip(batch.paths, batch.sizes, strict=True) if size]
    on_device = iter(_nvjpeg(list(files), names, device) if files else [])
    from_worker = iter(batch.decoded)
    images = [next(on_device) if size else next(from_worker).to(device, non_blocking=True) for size in batch.sizes]
    if not train:
        return torch.stack(by_shape(images, center))
    resized = by_shape([_cropped(im, crop) for im, crop in zip(images, batch.crops, strict=True)], _to_size)
    return torch.stack([v.flip(-1) if crop.flip else v for v, crop in zip(resized, batch.crops, strict=True)])


def decode_batch(files: list[Tensor], paths: list[str], decoder: Callable[[list[Tensor]], list[Tensor]],
                 fallback: Callable[[Tensor, str], Tensor]) -> list[Tensor]:
    """``decoder(files)``: the files decoded in one call; when that call fails, ``decoder`` on each file
    alone, and ``fallback(data, path)`` on each file it rejects alone. One file that the batched decoder
    cannot take (nvJPEG checks a batch's chroma subsampling as a whole, for one) then fails neither the
    batch nor the trial; a file fails only when ``fallback`` raises too (:func:`decode` raises naming it)."""
    try:
        return decoder(files)
    except RuntimeError:
        pass
    images = []
    for data, path in zip(files, paths, strict=True):
        try:
            images.extend(decoder([data]))
        except RuntimeError:
            images.append(fallback(data, path))
    return images


def _nvjpeg(files: list[Tensor], paths: list[str], device: torch.device) -> list[Tensor]:
    """The files decoded on ``device`` by nvJPEG, a batch in one call; a file nvJPEG rejects is decoded by
    libjpeg-turbo on the CPU and moved there."""
    return decode_batch(files, paths, partial(decode_jpeg, mode=ImageReadMode.RGB, device=device),
                        lambda data, path: decode(data, path).to(device))


def _reason(error: Exception) -> str:
    """The last line of a torchvision error (its first lines are C++ source locations)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    reason = lines[-1] if lines else type(error).__name__
    return reason.rsplit(".cpp:", 1)[-1].split(", ", 1)[-1] if ".cpp:" in reason else reason
