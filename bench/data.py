"""Input-pipeline throughput for CIFAR-shaped data: shrink's tensor fast path against a torchvision
DataLoader with the same augmentation, measured in the same run.

Writes 50,000 random 3x32x32 images (and a 10,000-image test batch) in CIFAR-10's python pickle
format to a temporary directory, loads the training split through ``shrink.datasets.load`` (10% held
out for validation), then times one training epoch per batch size of

- the fast path: ``Split.batches(bs, train=True)`` (seeded shuffle, batched random crop with 4-pixel
  padding and horizontal flip, normalization), and
- the baseline: ``DataLoader(num_workers=2, shuffle=True, drop_last=True)`` over the same images as
  HWC uint8 arrays turned into PIL images, with ``RandomCrop(32, padding=4)``,
  ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)`` (what torchvision's CIFAR10
  dataset does), worker start-up included.

Both produce normalized float32 batches on the CPU. Prints images/s of both and their ratio; the
target on a 2-core machine is at least 3x.

    python bench/data.py [--images 50000] [--batch-sizes 64 128] [--workers 2] [--threads N]

On a busy machine, two torch threads can be many times slower than one (OpenMP threads wait for each
other); the DataLoader's workers use one thread each. ``--threads 1`` compares like with like.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shrink import datasets  # noqa: E402
from synthetic_cifar import PILImages, write_cifar10  # noqa: E402



def images_per_second(batches) -> float:
    start, count = time.perf_counter(), 0
    for x, _ in batches:
        count += len(x)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000, help="training images to write (default 50000)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default 2)")
    parser.add_argument("--threads", type=int, help="torch threads of this process (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from torchvision import transforms as T

    with tempfile.TemporaryDirectory() as tmp:
        print(f"writing {args.images:,} CIFAR-shaped images in the python pickle format ...", flush=True)
        write_cifar10(Path(tmp), args.images, 10_000)
        start = time.perf_counter()
        train = datasets.load("cifar10", "train", root=tmp)
        print(f"shrink.datasets.load read and split them in {time.perf_counter() - start:.2f} s: {train}", flush=True)

        info = train.info
        transform = T.Compose(
            [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(info.mean, info.std)]
        )
        baseline = PILImages(train.images.permute(0, 2, 3, 1).numpy(), train.labels.numpy(), transform)

        print(f"\none training epoch of {len(train):,} images, torch threads {torch.get_num_threads()}")
        print("images/s; the ratio compares the fast path's first epoch (which pads and caches the images) to the DataLoader")
        print(f"{'batch':>5}  {'fast, 1st epoch':>15}  {'fast, 2nd epoch':>15}  {f'DataLoader, {args.workers} workers':>22}  {'ratio':>6}")
        for batch_size in args.batch_sizes:
            fresh = datasets.load("cifar10", "train", root=tmp)
            first = images_per_second(fresh.batches(batch_size, train=True, seed=0))
            second = images_per_second(fresh.batches(batch_size, train=True, seed=1))
            loader = DataLoader(baseline, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=args.workers)
            slow = images_per_second(loader)
            print(f"{batch_size:>5}  {first:>15,.0f}  {second:>15,.0f}  {slow:>22,.0f}  {first / slow:>5.1f}x", flush=True)
    print("\ntarget: fast path at least 3x the DataLoader pipeline")


if __name__ == "__main__":
    main()
