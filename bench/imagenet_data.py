"""ImageNet training-path throughput per CPU core: shrink's libjpeg-turbo + uint8 path against the PIL path
it replaced, measured in the same run, interleaved.

Writes a synthetic ImageFolder tree once (``--images`` JPEGs of 500x375, ImageNet's typical size, at
quality 90, a smooth colour field plus texture so that files are ~90 KB like photos; every 20th is
grayscale), then times three paths in this one process, with no DataLoader workers, so that the CPU
seconds of this process are the per-core cost:

- old: the PIL path shrink had: ``default_loader`` (PIL decode, convert to RGB), torchvision v1
  ``RandomResizedCrop(224)``, ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize``, default collation
  (all of it ran in the DataLoader workers);
- new worker: what a worker of the new CPU path does: decode to uint8, crop drawn on the decoded size and
  resized alone (antialiased, uint8), flip, uint8 collation;
- new + normalize: ``ImageFolderSplit.batches(train=True)`` on the CPU, i.e. the above plus converting
  and normalizing each batch (on a CUDA device that pass runs on the GPU).

Batches alternate between the paths, in a rotating order; each round gives each path ``--per-round``
images. Prints images per CPU-second (robust to other processes sharing the machine; wall-clock images/s
beside it) for each round, the medians, and the median per-round ratios to the old path (target: at
least 2x per core). Also prints decoding alone (torchvision against PIL) and how many training crops
would allow a half-size (DCT-scaled) decode without losing resolution.

Then the decode choices of a trial's ``decode`` setting (``--decode cpu|gpu|both``), each a split with
``--workers`` loader processes, measured in alternating rounds: ``cpu`` (libjpeg-turbo in the workers)
and ``gpu`` (the workers read bytes, nvJPEG decodes on the device, the next batch prepared on a
background thread); wall-clock images/s of the loader alone and, with CUDA, of ResNet-18 training
(bf16 autocast, channels-last) fed by it, and the gpu/cpu ratio. Without CUDA the ``gpu`` choice is not
measured (one line says so) and batches land on the CPU.

    python bench/imagenet_data.py [--images 2000] [--tree DIR] [--rounds 6] [--per-round 256] [--threads 1]
                                  [--decode both] [--workers 8] [--feed-batch-size 256] [--feed-images 20000]
                                  [--skip-cpu]

``--skip-cpu`` measures only the decode choices (``bench/gpu.sh``: ResNet-18 224 px bf16 fed by the JPEG
path, target at least 5,000 images/s on an A100/H100-class GPU).

``--threads 1`` compares like with like on a shared machine; ``--tree DIR`` keeps the tree for later runs.
"""

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shrink.datasets import Decode, images  # noqa: E402
from shrink.datasets.imagefolder import IMAGENET, ImageFolderSplit, _scan  # noqa: E402

CLASSES = 10


def write_tree(root: Path, n: int, seed: int = 0) -> Path:
    """``root/train/<class>/*.JPEG``: ``n`` 500x375 quality-90 JPEGs over ``CLASSES`` classes (written once:
    an existing tree with as many files is reused)."""
    train = root / "train"
    if train.is_dir() and sum(1 for _ in train.glob("*/*.JPEG")) == n:
        return train
    rng = np.random.default_rng(seed)
    print(f"writing {n:,} synthetic 500x375 JPEGs under {train} ...", flush=True)
    for i in range(n):
        folder = train / f"n{i % CLASSES:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        photo_like(rng, gray=i % 20 == 0).save(folder / f"{i}.JPEG", quality=90)
    return train


def photo_like(rng: np.random.Generator, width: int = 500, height: int = 375, gray: bool = False) -> Image.Image:
    """A smooth random colour field (bicubic from a 1/25 grid) plus Gaussian texture."""
    grid = rng.integers(0, 256, (height // 25 + 1, width // 25 + 1, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(grid).resize((width, height), Image.BICUBIC), dtype=np.int16)
    pixels = np.clip(field + rng.normal(0, 12, (height, width, 1)).astype(np.int16), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    return image.convert("L") if gray else image


class PILPath(Dataset):
    """The replaced path: PIL decoding and torchvision v1 transforms, one image at a time."""

    def __init__(self, samples, mean, std):
        from torchvision import transforms as T

        self.samples = samples
        self.transform = T.Compose(
            [T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)]
        )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from torchvision.datasets.folder import default_loader

        path, label = self.samples[i]
        return self.transform(default_loader(path)), label


def endless(make):
    """Batches from ``make(epoch)``, epoch after epoch."""
    epoch = 0
    while True:
        yield from make(epoch)
        epoch += 1


def timed_batch(batches) -> tuple[int, float, float]:
    """Images in the next batch, and the CPU seconds and wall seconds this process spent producing it."""
    cpu, wall = time.process_time(), time.perf_counter()
    x, _ = next(batches)
    return len(x), time.process_time() - cpu, time.perf_counter() - wall


def rate(fn, items) -> float:
    """Items per CPU-second of this process that ``fn`` handles."""
    start = time.process_time()
    for item in items:
        fn(item)
    return len(items) / (time.process_time() - start)


class WorkerPart(Dataset):
    """What one DataLoader worker of the new CPU path does per example (normalization is per batch, where
    the batch lands: the GPU, or the training process on a CPU device)."""

    def __init__(self, samples):
        self.samples = samples
        self.draws = torch.rand(len(samples), images.DRAWS, generator=torch.Generator().manual_seed(0),
                                dtype=torch.float64).tolist()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        return images.load_train(path, self.draws[i]), label


def cpu_comparison(samples, args) -> None:
    """Alternate one batch of each path (in a rotating order), ``--rounds`` rounds of ``--per-round`` images
    per path, all in this process; CPU seconds of this process are the per-core cost."""
    info = IMAGENET.info
    new_split = ImageFolderSplit(info, "train", "bench", samples, workers=0)
    old_set, worker_set = PILPath(samples, info.mean, info.std), WorkerPart(samples)

    def loader(dataset):
        return lambda e: DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                    generator=torch.Generator().manual_seed(e))

    paths = {
        "old": endless(loader(old_set)),
        "new worker": endless(loader(worker_set)),
        "new + normalize": endless(lambda e: new_split.batches(args.batch_size, train=True, seed=e)),
    }
    names = list(paths)
    for batches in paths.values():
        timed_batch(batches)  # warm-up
    print(f"\ntraining path, 1 process, no workers, torch threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"{args.per_round} images per path per round, batches alternating")
    print("images per CPU-second of this process (= per core), wall-clock images/s in brackets:")
    print("  old: the PIL path, all of it in the worker (decode, crop, float, normalize, collate)")
    print("  new worker: what a worker of the new CPU path does (decode, crop, uint8 collate)")
    print("  new + normalize: that plus the per-batch normalization (Split.batches on a CPU device)")
    print(f"{'round':>5}  {'old':>15}  {'new worker':>15}  {'new + normalize':>15}  {'ratios':>13}")
    rows = []
    for r in range(args.rounds):
        totals = {name: [0, 0.0, 0.0] for name in names}
        k = 0
        while min(t[0] for t in totals.values()) < args.per_round:
            for name in names[k % 3 :] + names[: k % 3]:
                n, cpu, wall = timed_batch(paths[name])
                totals[name] = [totals[name][0] + n, totals[name][1] + cpu, totals[name][2] + wall]
            k += 1
        per_cpu = [n / cpu for n, cpu, _ in totals.values()]
        per_wall = [n / wall for n, _, wall in totals.values()]
        rows.append((*per_cpu, per_cpu[1] / per_cpu[0], per_cpu[2] / per_cpu[0]))
        cells = "  ".join(f"{c:>6,.0f} ({w:>5,.0f})" for c, w in zip(per_cpu, per_wall, strict=True))
        print(f"{r:>5}  {cells}  {rows[-1][3]:>5.2f}x {rows[-1][4]:>5.2f}x", flush=True)
    medians = [statistics.median(column) for column in zip(*rows)]
    print(f"{'median':>5}  " + "  ".join(f"{m:>6,.0f}        " for m in medians[:3])
          + f"  {medians[3]:>5.2f}x {medians[4]:>5.2f}x   (target: at least 2x per core)")


def components(samples, args) -> None:
    """Decoding alone, and the share of crops a half-size DCT decode would serve without losing resolution."""
    from torchvision.transforms import RandomResizedCrop

    paths = [p for p, _ in samples[: args.per_round]]
    data = [images.read_bytes(p) for p in paths]
    raw = [bytes(d.numpy()) for d in data]
    tv = [rate(lambda d: images.decode(d, "x"), data) for _ in range(3)]
    pil = [rate(lambda b: Image.open(io.BytesIO(b)).convert("RGB"), raw) for _ in range(3)]
    print(f"\ndecoding alone ({len(paths)} files, median of 3), images per CPU-second: "
          f"torchvision {statistics.median(tv):,.0f}, PIL {statistics.median(pil):,.0f}")
    sizes = [Image.open(p).size for p in paths]
    draws = [
        RandomResizedCrop.get_params(torch.empty(1, h, w), (0.08, 1.0), (3 / 4, 4 / 3))
        for w, h in sizes
        for _ in range(20)
    ]
    lossless = sum(1 for _, _, h, w in draws if min(h, w) >= 2 * images.SIZE)
    print(f"training crops at least {2 * images.SIZE} px on both sides (half-size decoding would lose nothing): "
          f"{lossless} of {len(draws)}")


def decode_figures(samples, args) -> None:
    """Loader images/s of each decode choice (``--workers`` processes), and with CUDA ResNet-18 training
    images/s fed by each: ``--rounds`` alternating rounds of ``--feed-images`` / ``--rounds`` images each."""
    from torchvision.models import resnet18

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    choices = [choice for choice in Decode if args.decode in (choice, "both")]
    if Decode.GPU in choices and not cuda:
        print("\ndecode gpu: needs a CUDA device, none here: not measured")
        choices.remove(Decode.GPU)
    if not choices:
        return
    feeds = {}
    for choice in choices:
        split = ImageFolderSplit(IMAGENET.info, "train", "bench", samples, workers=args.workers, decode=choice)
        feeds[choice] = endless(lambda e, split=split: split.batches(args.feed_batch_size, train=True, device=device,
                                                                      seed=e))

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def rate_of(batches, step, count: int) -> float:
        sync()
        start, n = time.perf_counter(), 0
        while n < count:
            x, y = next(batches)
            step(x, y)
            n += len(x)
        sync()
        return n / (time.perf_counter() - start)

    steps = {"loader alone": lambda x, y: None}
    if cuda:
        model = resnet18(num_classes=CLASSES).to(device, memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)

        def train_step(x, y):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        steps["ResNet-18 training fed by it (bf16 autocast, channels-last, SGD)"] = train_step
    per_round = max(args.feed_batch_size, args.feed_images // args.rounds)
    print(f"\ndecode choices on {device.type}, {args.workers} loader workers each, batch {args.feed_batch_size}, "
          f"{args.rounds} alternating rounds of {per_round} images, wall-clock images/s (median):")
    for name, step in steps.items():
        for choice in choices:  # workers start, cuDNN picks its kernels
            rate_of(feeds[choice], step, 4 * args.feed_batch_size)
        rows = []
        for r in range(args.rounds):
            order = choices[r % len(choices):] + choices[: r % len(choices)]
            rows.append({choice: rate_of(feeds[choice], step, per_round) for choice in order})
        medians = {choice: statistics.median(row[choice] for row in rows) for choice in choices}
        cells = ", ".join(f"decode {choice} {medians[choice]:,.0f}" for choice in choices)
        ratio = (f"; gpu/cpu {statistics.median(row[Decode.GPU] / row[Decode.CPU] for row in rows):.2f}x"
                 if len(choices) == 2 else "")
        print(f"  {name}: {cells}{ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="synthetic training JPEGs to write (default 2000)")
    parser.add_argument("--tree", type=Path,
                        help="where to write (and later reuse) the tree; default: a temporary directory")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (default 6)")
    parser.add_argument("--per-round", type=int, default=256, help="images per side per round (default 256)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch threads of this process (default: torch's choice)")
    parser.add_argument("--decode", choices=("cpu", "gpu", "both"), default="both",
                        help="decode choices to measure (default both; gpu needs CUDA)")
    parser.add_argument("--workers", type=int, default=8, help="loader processes per decode choice (default 8)")
    parser.add_argument("--feed-batch-size", type=int, default=256, help="batch of the decode figures (default 256)")
    parser.add_argument("--feed-images", type=int, default=20_000,
                        help="images per decode figure, over all rounds (default 20000)")
    parser.add_argument("--skip-cpu", action="store_true",
                        help="skip the per-core comparison with the PIL path: only the decode choices")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.per_round > args.images:
        parser.error(f"--per-round {args.per_round} exceeds --images {args.images}")

    with tempfile.TemporaryDirectory() as tmp:
        train = write_tree(args.tree or Path(tmp), args.images)
        _, samples = _scan(train)
        if not args.skip_cpu:
            components(samples, args)
            cpu_comparison(samples, args)
        decode_figures(samples, args)


if __name__ == "__main__":
    main()
