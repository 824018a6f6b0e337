"""The ImageNet data path: decoding, augmentation, worker reuse and errors, on image files the tests write
with PIL (photo-like JPEGs, grayscale, CMYK, a PNG named .JPEG, truncated and corrupt files)."""

import math
import multiprocessing
import re
import threading

import numpy as np
import pytest
import torch
from helpers import photo_like, position_coded_image
from PIL import Image

from shrink import datasets
from shrink.datasets import Decode, Shard, images
from shrink.datasets.imagefolder import IMAGENET, ImageFolderSplit, Prefetch

INFO = IMAGENET.info
MEAN = torch.tensor(INFO.mean).view(3, 1, 1)
STD = torch.tensor(INFO.std).view(3, 1, 1)


def levels(x: torch.Tensor) -> torch.Tensor:
    """Normalized images back in 0-255 pixel levels."""
    return (x.cpu() * STD + MEAN) * 255


def reference_eval(path) -> torch.Tensor:
    """torchvision's reference evaluation transform on the PIL image, as shrink had it before."""
    from torchvision import transforms as T
    from torchvision.datasets.folder import default_loader

    transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(INFO.mean, INFO.std)])
    return transform(default_loader(str(path)))


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The largest gap between the empirical distribution functions of ``a`` and ``b``."""
    points = np.concatenate([a, b])
    cdf = [np.searchsorted(np.sort(x), points, side="right") / len(x) for x in (a, b)]
    return float(np.abs(cdf[0] - cdf[1]).max())


def box_features(boxes: np.ndarray, height: int, width: int) -> dict[str, np.ndarray]:
    """Area fraction, log aspect ratio, and relative top and left positions of ``(top, left, h, w)`` rows."""
    top, left, h, w = boxes.T
    return {
        "area": h * w / (height * width),
        "log_ratio": np.log(w / h),
        "top": np.divide(top, height - h, out=np.full_like(top, 0.5), where=h < height),
        "left": np.divide(left, width - w, out=np.full_like(left, 0.5), where=w < width),
    }


def split_of(paths, workers=0, decode=Decode.CPU) -> ImageFolderSplit:
    samples = [(str(p), i % 2) for i, p in enumerate(paths)]
    return ImageFolderSplit(INFO, "train", "test-split", samples, workers=workers, decode=decode)


@pytest.fixture
def odd_files(tmp_path):
    """Files as real ImageNet has them: photos of several sizes, grayscale and CMYK JPEGs, a PNG (with
    alpha) under a .JPEG name, and one smaller than the crop."""
    specs = [
        ("photo.JPEG", (500, 375), "RGB", "JPEG"),
        ("portrait.JPEG", (375, 500), "RGB", "JPEG"),
        ("small.JPEG", (200, 150), "RGB", "JPEG"),
        ("gray.JPEG", (500, 333), "L", "JPEG"),
        ("cmyk.JPEG", (400, 300), "CMYK", "JPEG"),
        ("png.JPEG", (500, 333), "RGBA", "PNG"),
    ]
    paths = []
    for i, (name, size, mode, fmt) in enumerate(specs):
        image = photo_like(*size, seed=i).convert(mode)
        assert image.mode == mode
        image.save(tmp_path / name, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        paths.append(tmp_path / name)
    with Image.open(tmp_path / "png.JPEG") as png, Image.open(tmp_path / "cmyk.JPEG") as cmyk:
        assert (png.format, cmyk.mode) == ("PNG", "CMYK")
    return paths


def test_evaluation_view_equals_the_torchvision_reference_for_every_kind_of_file(odd_files):
    split = split_of(odd_files, workers=2)
    x, y = next(split.batches(len(odd_files), train=False))
    assert x.dtype == torch.float32 and x.shape == (len(odd_files), 3, 224, 224) and y.tolist() == [0, 1, 0, 1, 0, 1]
    reference = torch.stack([reference_eval(p) for p in odd_files])
    diff = (levels(x) - levels(reference)).abs()
    # Antialiased bilinear on uint8 against PIL's: at most one level apart, almost always equal.
    assert diff.amax().item() <= 1.001
    assert diff.mean().item() < 0.05
    sampled, labels = split.sample(len(odd_files), seed=0)
    order = torch.randperm(len(odd_files), generator=torch.Generator().manual_seed(0)).tolist()
    assert torch.equal(sampled, x[order]) and torch.equal(labels, y[order])
    assert not torch.cuda.is_initialized()


def test_training_view_equals_torchvision_on_the_pil_image_for_the_same_box(odd_files):
    """For the drawn box and flip, torchvision's v1 functional ``resized_crop`` (PIL, bilinear with
    antialiasing) and ``hflip`` on the PIL image give the same pixels within one level."""
    from torchvision.datasets.folder import default_loader
    from torchvision.transforms import functional as TF

    generator = torch.Generator().manual_seed(3)
    draws = torch.rand(4 * len(odd_files), images.DRAWS, generator=generator, dtype=torch.float64)
    flips = 0
    for k, d in enumerate(draws.tolist()):
        path = str(odd_files[k % len(odd_files)])
        ours = images.load_train(path, d)
        pil = default_loader(path)
        crop = images.train_crop(pil.height, pil.width, d)
        theirs = TF.pil_to_tensor(TF.resized_crop(pil, crop.top, crop.left, crop.height, crop.width, [224, 224]))
        theirs = TF.hflip(theirs) if crop.flip else theirs
        flips += crop.flip
        assert (ours.int() - theirs.int()).abs().max().item() <= 1, (path, crop)
    assert 0 < flips < len(draws)


def test_crop_boxes_follow_random_resized_crop_distribution():
    """Area fraction, aspect ratio and position of 5,000 boxes against torchvision's RandomResizedCrop
    on the same image sizes, including a panorama where most draws fall back to the central crop."""
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    for height, width in ((375, 500), (100, 1000)):
        draws = torch.rand(5000, images.DRAWS, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        ours = [images.train_crop(height, width, d) for d in draws.tolist()]
        theirs = [RandomResizedCrop.get_params(torch.empty(1, height, width), [0.08, 1.0], [3 / 4, 4 / 3])
                  for _ in range(5000)]
        for c in ours:
            assert 0 <= c.top and c.top + c.height <= height and 0 <= c.left and c.left + c.width <= width
        mine = np.array([(c.top, c.left, c.height, c.width) for c in ours], dtype=float)
        ref = np.array(theirs, dtype=float)
        for name, values in box_features(mine, height, width).items():
            # Two-sample Kolmogorov-Smirnov distance; 0.04 is its 0.05% critical value for 5,000 + 5,000 draws.
            assert ks_distance(values, box_features(ref, height, width)[name]) < 0.04, (height, width, name)
        area = mine[:, 2] * mine[:, 3] / (height * width)
        ratio = mine[:, 3] / mine[:, 2]
        assert area.min() >= 0.079 and area.max() <= 1.0
        assert ratio.min() >= 0.75 - 0.02 and ratio.max() <= 4 / 3 + 0.02
        assert abs(np.mean([c.flip for c in ours]) - 0.5) < 0.03  # 5,000 draws: 4 standard deviations


def test_training_batches_apply_the_drawn_crops_and_flips(tmp_path):
    """500 training views of a position-coded image: the crop box and mirroring read back from the
    pixels have RandomResizedCrop's area and ratio ranges and a flip rate of 1/2."""
    from torchvision.transforms import RandomResizedCrop

    width, height = 200, 150
    path = tmp_path / "coded.JPEG"
    position_coded_image(width, height).save(path, quality=95, subsampling=0)
    split = ImageFolderSplit(INFO, "train", "coded", [(str(path), 0)] * 500, workers=0)
    x = torch.cat([x for x, _ in split.batches(100, train=True, seed=0)])
    assert x.shape == (500, 3, 224, 224)
    v = levels(x)
    a, b = 16, 207  # interior columns/rows: output pixel j samples the crop at (j + 0.5) / 224 of its size
    red = v[:, 0, :, b].mean(1) - v[:, 0, :, a].mean(1)
    green = v[:, 1, b, :].mean(1) - v[:, 1, a, :].mean(1)
    crop_width = red.abs() * (width - 1) / 255 * 224 / (b - a)
    crop_height = green * (height - 1) / 255 * 224 / (b - a)
    area = (crop_width * crop_height / (width * height)).numpy()
    ratio = (crop_width / crop_height).numpy()
    flipped = (red < 0).float()
    assert (green > 0).all()  # never flipped vertically
    assert area.min() > 0.08 * 0.9 and area.max() < 1.03
    assert ratio.min() > 0.75 * 0.93 and ratio.max() < 4 / 3 * 1.07
    assert abs(flipped.mean().item() - 0.5) < 0.09  # 500 draws: 4 standard deviations
    torch.manual_seed(0)
    reference = [RandomResizedCrop.get_params(torch.empty(1, height, width), [0.08, 1.0], [3 / 4, 4 / 3])
                 for _ in range(2000)]
    ref_area = np.mean([h * w / (width * height) for _, _, h, w in reference])
    ref_log_ratio = np.mean([math.log(w / h) for _, _, h, w in reference])
    assert abs(area.mean() - ref_area) < 0.05  # 4 standard deviations of a 500-draw mean
    assert abs(np.log(ratio).mean() - ref_log_ratio) < 0.04


def test_training_batches_depend_on_the_seed_only_not_on_the_workers(odd_files):
    in_process, with_workers = split_of(odd_files, workers=0), split_of(odd_files, workers=2)
    first = list(in_process.batches(3, train=True, seed=7))
    assert len(first) == 2 and first[0][0].shape == (3, 3, 224, 224)
    for (x, y), (x2, y2) in zip(first, with_workers.batches(3, train=True, seed=7), strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    other = torch.cat([x for x, _ in in_process.batches(3, train=True, seed=8)])
    assert not torch.equal(torch.cat([x for x, _ in first]), other)


def test_data_parallel_shards_together_are_the_single_process_batches(odd_files):
    split = split_of(odd_files * 2)  # 12 examples
    whole = list(split.batches(4, train=True, seed=3))
    shards = [list(split.batches(4, train=True, seed=3, shard=Shard(rank, 2))) for rank in range(2)]
    assert len(whole) == 3 and [len(s) for s in shards] == [3, 3]
    for step, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([shards[rank][step][0] for rank in range(2)]), x)  # crops and flips too
        assert torch.equal(torch.cat([shards[rank][step][1] for rank in range(2)]), y)
    seen = [torch.cat([y for _, y in split.batches(5, train=False, shard=Shard(rank, 3))]) for rank in range(3)]
    assert [len(s) for s in seen] == [4, 4, 4] and torch.cat(seen).tolist() == [i % 2 for i in range(12)]
    with pytest.raises(ValueError, match="batch_size 5 is not divisible by the 2 processes"):
        split.batches(5, train=True, seed=0, shard=Shard(0, 2))


def test_workers_persist_across_epochs_and_end_when_the_loader_is_rebuilt(odd_files):
    split = split_of(odd_files, workers=2)
    before = {p.pid for p in multiprocessing.active_children()}
    list(split.batches(2, train=True, seed=0))
    workers = {p.pid for p in multiprocessing.active_children()} - before
    assert len(workers) == 2
    list(split.batches(2, train=True, seed=1))
    assert {p.pid for p in multiprocessing.active_children()} - before == workers
    list(split.batches(3, train=True, seed=2))  # another batch size: new workers, the old ones end
    now = {p.pid for p in multiprocessing.active_children()} - before
    assert len(now) == 2 and not now & workers


def test_a_newer_iteration_takes_over_and_the_older_one_says_so(odd_files):
    split = split_of(odd_files, workers=2)
    older = split.batches(2, train=True, seed=0)
    next(older)
    newer = split.batches(2, train=True, seed=1)
    assert len(list(newer)) == 3
    with pytest.raises(RuntimeError, match="a newer batches\\(train=True\\) call took over"):
        next(older)


@pytest.mark.parametrize(
    "name, content",
    [
        ("truncated.JPEG", lambda good: good[: len(good) // 2]),
        ("garbage.JPEG", lambda good: b"not an image at all" * 20),
        ("empty.JPEG", lambda good: b""),
    ],
)
def test_a_broken_file_stops_the_iteration_naming_the_file(tmp_path, odd_files, name, content):
    broken = tmp_path / name
    broken.write_bytes(content(odd_files[0].read_bytes()))
    split = split_of([*odd_files, broken], workers=2)
    pattern = re.escape(str(broken)) + ": "
    for train in (True, False):
        with pytest.raises(datasets.DatasetFormatError, match=pattern):
            list(split.batches(7, train=train, seed=0))
    with pytest.raises(datasets.DatasetFormatError, match=pattern):
        split.sample(7, seed=0)


def test_cuda_path_logic_with_the_cpu_as_device_gives_the_cpu_path_exactly(odd_files):
    """The CUDA path's worker step, collation and batch step, run with ``device=cpu`` (decode_jpeg then
    uses libjpeg-turbo): the same views as the CPU path, each file routed as documented."""
    paths = [str(p) for p in odd_files]
    draws = torch.rand(len(paths), images.DRAWS, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for train in (True, False):
        examples = [(images.load_encoded(p, d, train=train), i) for i, (p, d) in enumerate(zip(paths, draws.tolist()))]
        batch = images.collate_encoded(examples)
        # photo, portrait, small: nvJPEG; gray, CMYK, PNG: decoded in the worker.
        assert [size > 0 for size in batch.sizes] == [True, True, True, False, False, False]
        assert batch.jpegs.numel() == sum(batch.sizes) and len(batch.decoded) == 3
        assert batch.labels.tolist() == list(range(len(paths)))
        got = images.device_images(batch, torch.device("cpu"), train=train)
        if train:
            want = torch.stack([images.load_train(p, d) for p, d in zip(paths, draws.tolist())])
        else:
            want = torch.stack([images.load_eval(p) for p in paths])
        assert got.dtype == torch.uint8 and torch.equal(got, want)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "shrink-prefetch"]


def test_decode_gpu_prefetched_on_the_cpu_gives_the_cpu_decode_batches_in_order(tmp_path, odd_files):
    """``decode=gpu`` with the CPU as device (nvJPEG's place taken by libjpeg-turbo): each batch prepared on
    the prefetch thread, the same batches in the same order as ``decode=cpu``; the thread ends after a
    ``break``, on a newer iteration and at a broken file, whose error reaches the consumer naming it."""
    paths = [*odd_files, odd_files[0], odd_files[3]]  # two pairs of one shape: batched resizes
    cpu, gpu = split_of(paths), split_of(paths, decode=Decode.GPU)
    for train in (True, False):
        want, got = list(cpu.batches(4, train=train, seed=3)), list(gpu.batches(4, train=train, seed=3))
        assert len(got) == 2 and all(torch.equal(a, b) for w, g in zip(want, got, strict=True)
                                     for a, b in zip(w, g, strict=True))
    assert prefetch_threads() == []
    for _ in gpu.batches(2, train=True, seed=0):
        assert len(prefetch_threads()) == 1
        break
    assert prefetch_threads() == []
    older = gpu.batches(2, train=True, seed=0)
    next(older)
    assert len(list(gpu.batches(2, train=True, seed=1))) == 4 and prefetch_threads() == []
    with pytest.raises(RuntimeError, match="a newer batches\\(train=True\\) call took over"):
        next(older)
    broken = tmp_path / "truncated.JPEG"
    broken.write_bytes(odd_files[0].read_bytes()[: -3000])
    with pytest.raises(datasets.DatasetFormatError, match=re.escape(str(broken)) + ": cannot decode"):
        list(split_of([*odd_files, broken], decode=Decode.GPU).batches(7, train=False))
    assert prefetch_threads() == []


def test_prefetch_keeps_order_raises_the_threads_error_and_ends_its_thread():
    assert list(Prefetch(iter(range(5)), lambda i: i * i)) == [0, 1, 4, 9, 16]

    def prepare(i):
        if i == 2:
            raise datasets.DatasetFormatError(f"file{i}.JPEG: cannot decode the image")
        return i

    got = Prefetch(range(5), prepare)
    assert [next(got), next(got)] == [0, 1]
    with pytest.raises(datasets.DatasetFormatError, match="^file2.JPEG: cannot decode the image$"):
        next(got)
    assert prefetch_threads() == [] and list(got) == []
    abandoned = Prefetch(range(10**6), lambda i: i)
    assert next(abandoned) == 0
    del abandoned  # dropped mid-way: its thread stops
    assert prefetch_threads() == []


def test_views_of_one_shape_are_transformed_as_one_batch_with_the_same_result(odd_files):
    decoded = [images.decode(images.read_bytes(str(p)), str(p)) for p in odd_files]
    views = [decoded[0], decoded[3], decoded[0][:, :300], decoded[5], decoded[1]]  # gray and PNG: one shape
    calls = []

    def center(batch):
        calls.append(len(batch))
        return images.center(batch)

    got = images.by_shape(views, center)
    assert sorted(calls) == [1, 1, 1, 2]
    assert all(torch.equal(g, images.center(v)) for g, v in zip(got, views, strict=True))


def test_cuda_path_names_the_file_that_fails_to_decode(tmp_path, odd_files):
    truncated = tmp_path / "truncated.JPEG"
    truncated.write_bytes(odd_files[0].read_bytes()[:-3000])
    with pytest.raises(datasets.DatasetFormatError, match=re.escape(str(truncated)) + ": cannot decode"):
        images.load_encoded(str(truncated), (), train=False)  # no EOI marker: the worker decodes it, and fails
    good = images.load_encoded(str(odd_files[0]), (), train=False)
    fake = images.Encoded(torch.frombuffer(bytearray(b"\xff\xd8 not really a JPEG \xff\xd9"), dtype=torch.uint8),
                          str(tmp_path / "fake.JPEG"), None)
    batch = images.collate_encoded([(good, 0), (fake, 1)])
    with pytest.raises(datasets.DatasetFormatError, match=re.escape(str(tmp_path / "fake.JPEG")) + ": cannot decode"):
        images.device_images(batch, torch.device("cpu"), train=False)  # nvJPEG's rejection, then the CPU decoder's


def test_a_file_the_batched_decoder_rejects_is_decoded_alone_or_by_the_cpu_decoder(tmp_path, odd_files):
    """``decode_batch`` with a real pair of decoders that disagree: torchvision's decode_jpeg (JPEGs only) as
    the batched one, libjpeg-turbo's decode_image (any format) as the fallback."""
    from torchvision.io import ImageReadMode, decode_jpeg

    calls = []

    def jpegs_only(files):
        calls.append(len(files))
        return decode_jpeg(files, mode=ImageReadMode.RGB)

    chosen = [odd_files[0], odd_files[5], odd_files[2]]  # photo, the PNG named .JPEG, small
    paths = [str(p) for p in chosen]
    data = [images.read_bytes(p) for p in paths]
    got = images.decode_batch(data, paths, jpegs_only, images.decode)
    assert calls == [3, 1, 1, 1]  # the batch fails on the PNG; alone, the PNG fails and falls back
    assert len(got) == 3 and all(torch.equal(g, images.decode(d, p)) for g, d, p in zip(got, data, paths, strict=True))

    truncated = tmp_path / "truncated.JPEG"  # neither decoder reads it: the error names it
    truncated.write_bytes(odd_files[0].read_bytes()[:-3000])
    with pytest.raises(datasets.DatasetFormatError, match=f"^{re.escape(str(truncated))}: cannot decode the image"):
        images.decode_batch([data[0], images.read_bytes(str(truncated))], [paths[0], str(truncated)], jpegs_only,
                            images.decode)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_path_matches_the_cpu_path(tmp_path, odd_files):
    """nvJPEG decoding and on-device crops give the CPU path's views (the same crops: per-example draws),
    within decoder and resize differences; grayscale, CMYK, progressive and PNG files take the worker's CPU
    decoder."""
    progressive = tmp_path / "progressive.JPEG"
    photo_like(480, 360, seed=9).save(progressive, quality=90, progressive=True)
    split, on_gpu = split_of([*odd_files, progressive], workers=2), split_of([*odd_files, progressive], 2, Decode.GPU)
    for train in (True, False):
        cpu = list(split.batches(3, train=train, seed=4))
        gpu = list(on_gpu.batches(3, train=train, device="cuda", seed=4))
        assert len(cpu) == len(gpu) > 0
        for (x, y), (xg, yg) in zip(cpu, gpu, strict=True):
            assert xg.device.type == "cuda" and xg.dtype == torch.float32 and torch.equal(y, yg.cpu())
            per_image = (levels(x) - levels(xg)).abs().mean((1, 2, 3))
            assert per_image.max().item() < 3, per_image
    broken = tmp_path / "truncated.JPEG"
    broken.write_bytes(odd_files[0].read_bytes()[:-5000])
    with pytest.raises(datasets.DatasetFormatError, match=re.escape(str(broken))):
        list(split_of([*odd_files, broken], 2, Decode.GPU).batches(7, train=True, device="cuda", seed=0))
