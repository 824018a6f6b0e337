"""The GPU figures shrink claims, one per line as ``name: value unit`` (``bench/gpu.sh`` runs them all):

- ``steps``: trial steps per second of a pruned CIFAR ResNet-56 (global magnitude 4x, masks kept, bf16
  autocast, channels-last, the CIFAR fine-tuning preset at batch 64) through shrink's own loop and tensor
  fast path on synthetic CIFAR-shaped images, in ``--procs`` processes sharing the GPU at once (as
  fractional-GPU trials do): each warms up, waits for the others, then counts steps for ``--seconds``;
  prints each process's rate and their sum;
- ``nvjpeg``: ``torchvision.io.decode_jpeg(..., device="cuda")`` images/s over batches of synthetic
  500x375 JPEGs (ImageNet's typical size, made by ``bench/imagenet_data.py``'s ``photo_like``);
- ``latency``: forward latency of a dense ResNet-56 and of it pruned (global magnitude 4x, masked) at
  batch 1 and 64 (``shrink.metrics.compare_latency``, interleaved): masks alone give no speedup.

ResNet-18 224 px bf16 images/s against the GPU's peak is ``bench/ddp.py --skip-cpu``. Nothing here imports
Ray or MLflow.

    python bench/gpu.py steps [--procs 4] [--seconds 15]
    python bench/gpu.py nvjpeg [--seconds 10]
    python bench/gpu.py latency
"""

import argparse
import io
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's shrink, not an installed one

BATCH = 64
BLOCK = 10  # steps between clock reads


def steps(args) -> None:
    """Start ``--procs`` step-counting processes at once and print their rates."""
    with tempfile.TemporaryDirectory(prefix="shrink-gpu-") as barrier:
        children = [subprocess.Popen([sys.executable, __file__, "steps-one", "--barrier", barrier,
                                      "--procs", str(args.procs), "--seconds", str(args.seconds)],
                                     stdout=subprocess.PIPE, text=True) for _ in range(args.procs)]
        outputs = [child.communicate()[0] for child in children]
        if any(child.returncode for child in children):
            raise SystemExit("steps: a step-counting process failed")
        rates = [float(output.split()[-1]) for output in outputs]
    name = f"resnet56 cifar trial steps, batch {BATCH}, {args.procs} process{'es' if args.procs > 1 else ''}"
    if args.procs > 1:
        print(f"{name}, each: {' '.join(f'{rate:.1f}' for rate in rates)} steps/s")
    print(f"{name}, total: {sum(rates):.1f} steps/s ({sum(rates) * BATCH:,.0f} images/s)")


def steps_one(args) -> None:
    """One process: warm up, meet the others at the barrier, count steps for ``--seconds``; print the rate."""
    from pruned import pruned_cifar_resnet
    from synthetic_cifar import write_cifar10

    from shrink import datasets
    from shrink.experiment.loop import train_epoch

    with tempfile.TemporaryDirectory(prefix="shrink-gpu-") as root:
        write_cifar10(Path(root), 4096, 100)
        train = datasets.load("cifar10", "train", root=root)
        model, optimizer, compute = pruned_cifar_resnet("resnet56", "cuda")
        batches = itertools.chain.from_iterable(
            train.batches(BATCH, train=True, device="cuda", seed=epoch) for epoch in itertools.count())
        train_epoch(model, optimizer, itertools.islice(batches, 3 * BLOCK), compute)  # cuDNN's search, allocator
        torch.cuda.synchronize()
        _meet(Path(args.barrier), args.procs)
        start = time.perf_counter()
        count = 0
        while time.perf_counter() - start < args.seconds:
            train_epoch(model, optimizer, itertools.islice(batches, BLOCK), compute)
            count += BLOCK
        torch.cuda.synchronize()
    print(f"{count / (time.perf_counter() - start):.3f}")


def _meet(barrier: Path, procs: int) -> None:
    """Wait until all ``procs`` processes have reached this point."""
    (barrier / str(os.getpid())).touch()
    while sum(1 for _ in barrier.iterdir()) < procs:
        time.sleep(0.01)


def nvjpeg(args) -> None:
    """Batches of 64 JPEG files decoded on the GPU in one call, for ``--seconds``."""
    import numpy as np
    from imagenet_data import photo_like
    from torchvision.io import decode_jpeg

    rng = np.random.default_rng(0)
    files = []
    for i in range(BATCH):
        buffer = io.BytesIO()
        photo_like(rng, gray=i % 20 == 0).save(buffer, format="JPEG", quality=90)
        files.append(torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8))
    decode_jpeg(files, device="cuda")  # the decoder's start
    torch.cuda.synchronize()
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds:
        decode_jpeg(files, device="cuda")
        count += len(files)
    torch.cuda.synchronize()
    print(f"nvjpeg decode_jpeg 500x375 q90, batch {BATCH}: {count / (time.perf_counter() - start):,.0f} images/s")


def latency(args) -> None:
    """Dense against masked ResNet-56 forward latency on the GPU."""
    import copy

    from shrink import models, pruning
    from shrink.metrics import compare_latency

    torch.manual_seed(0)
    dense = models.create("resnet56", num_classes=10).eval()
    masked = copy.deepcopy(dense)
    pruning.prune(masked, "global-magnitude", 4.0)
    timed = compare_latency({"dense": dense, "pruned 4x (masked)": masked}, (3, 32, 32), (1, 64), device="cuda",
                            warmup=10, repeats=args.repeats)
    for batch in (1, 64):
        for name, runs in timed.items():
            print(f"resnet56 {name} latency, batch {batch}: {runs[batch].median_ms:.3f} ms "
                  f"(IQR {runs[batch].iqr_ms:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (("steps", "trial steps/s of ResNet-56, in --procs concurrent processes"),
                           ("steps-one", "one process of `steps` (started by it)")):
        command = commands.add_parser(name, help=helptext)
        command.add_argument("--procs", type=int, default=1, help="processes sharing the GPU at once")
        command.add_argument("--seconds", type=float, default=15.0, help="timed window of each process")
        command.add_argument("--barrier", help=argparse.SUPPRESS)
    commands.add_parser("nvjpeg", help="decode_jpeg on the GPU, images/s").add_argument(
        "--seconds", type=float, default=10.0)
    commands.add_parser("latency", help="dense vs pruned ResNet-56 latency").add_argument(
        "--repeats", type=int, default=50)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit(f"{args.command}: no CUDA device (torch {torch.__version__})")
    {"steps": steps, "steps-one": steps_one, "nvjpeg": nvjpeg, "latency": latency}[args.command](args)


if __name__ == "__main__":
    main()
