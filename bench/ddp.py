"""Data-parallel fine-tuning throughput: resnet20 on 1 and 2 workers (1 torch thread each, gloo, the
trial's own DDP pieces) in one run, and, on a CUDA machine, resnet18 at 224x224 on one GPU against the
GPU's peak.

CPU part: two processes form a gloo group once. The 1-worker and 2-worker measurements alternate,
``--block`` global batches of 64 at a time (so load from other processes hits both alike): 1 worker is
rank 0 training the pruned resnet20 alone on whole batches; 2 workers are both ranks under
``Ranks.wrap`` (DDP), each on its half of every global batch (``Shard``). Images are synthetic
CIFAR-shaped noise (throughput does not depend on content). Prints both rates (global images per
second) and the scaling efficiency, rate(2) / (2 x rate(1)); 1.0 is perfect.

GPU part (only when CUDA is present): plain fine-tuning steps of torchvision's resnet18 (shrink's
``resnet18``) at 224x224, batch ``--gpu-batch``, bf16 autocast, channels-last, SGD, on synthetic
inputs already on the GPU (the step alone, no data loading). Prints images/s and the ratio to what the
GPU's peak dense bf16 rate allows for 1.82 GMACs per image (forward + backward about 3x forward, 2 FLOPs
per MAC): ``peak / (3 x 2 x 1.82e9)`` images/s.

    python bench/ddp.py [--images 4096] [--block 4] [--gpu-batch 256] [--peak-tflops T]
"""

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's shrink, not an installed one

RESNET18_GMACS = 1.82
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) of common training GPUs, by a fragment of the name
# torch reports; the first fragment found wins. The SXM H100 calls itself "NVIDIA H100 80GB HBM3", the SXM
# H200 "NVIDIA H200"; the PCIe and NVL boards say so.
PEAK_BF16_TFLOPS = {"H200 NVL": 835.5, "H200": 989.4, "H100 NVL": 835.5, "H100 PCIe": 756.5, "H100": 989.4,
                    "A100": 312.0, "L40S": 362.1, "A10": 125.0, "V100": 125.0}


def peak_bf16_tflops(name: str) -> float | None:
    """The dense bf16 peak of the GPU torch names ``name``; None when the table does not know it."""
    return next((peak for fragment, peak in PEAK_BF16_TFLOPS.items() if fragment in name), None)


BATCH = 64


def cpu_worker(rank: int, root: str, port: int, args, results) -> None:
    """Rank ``rank`` of the 2-process gloo group: alternate 1-worker and 2-worker blocks."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from pruned import pruned_cifar_resnet

    from shrink import datasets
    from shrink.experiment.ranks import Ranks
    from shrink.experiment.loop import train_epoch

    train = datasets.load("cifar10", "train", root=root)
    pair = Ranks(rank, 2)
    alone, alone_optimizer, compute = pruned_cifar_resnet("resnet20", "cpu")
    shared, shared_optimizer, _ = pruned_cifar_resnet("resnet20", "cpu")
    wrapped = pair.wrap(shared)
    alone_batches = train.batches(BATCH, train=True, seed=1)
    pair_batches = train.batches(BATCH, train=True, seed=1, shard=pair.shard)
    totals = {1: [0, 0.0], 2: [0, 0.0]}
    for _ in range(0, len(train) // BATCH, args.block):
        dist.barrier()
        start = time.perf_counter()
        if rank == 0:
            stats = train_epoch(alone, alone_optimizer, itertools.islice(alone_batches, args.block), compute)
            totals[1][0] += stats.n
        dist.barrier()
        totals[1][1] += time.perf_counter() - start
        start = time.perf_counter()
        stats = train_epoch(wrapped, shared_optimizer, itertools.islice(pair_batches, args.block), compute, pair)
        dist.barrier()
        totals[2][0] += stats.n
        totals[2][1] += time.perf_counter() - start
    if rank == 0:
        results.update({workers: images / seconds for workers, (images, seconds) in totals.items()})
    dist.destroy_process_group()


def cpu_part(args) -> None:
    import socket

    import torch.multiprocessing as mp

    from synthetic_cifar import write_cifar10

    with tempfile.TemporaryDirectory(prefix="shrink-bench-") as root, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        write_cifar10(Path(root), args.images, 100)
        results = mp.Manager().dict()
        mp.spawn(cpu_worker, args=(root, port, args, results), nprocs=2, join=True)
    one, two = results[1], results[2]
    print(f"resnet20 (pruned 4x) fine-tuning on CPU, global batch {BATCH}, 1 torch thread per worker, "
          f"{args.images:,} synthetic images (90% after the validation carve-out)")
    print(f"1 worker:            {one:8.1f} images/s")
    print(f"2 workers (DDP):     {two:8.1f} images/s")
    print(f"scaling efficiency:  {two / (2 * one):8.2f}  (rate(2) / (2 x rate(1)))")


def gpu_part(args) -> None:
    """resnet18 224x224 bf16 channels-last fine-tuning steps on one GPU, against the GPU's peak."""
    import torch.nn.functional as F

    from shrink import models

    device = "cuda"
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or peak_bf16_tflops(name)
    model = models.create("resnet18", num_classes=1000).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    x = torch.randn(args.gpu_batch, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.gpu_batch,), device=device)
    torch.backends.cudnn.benchmark = True

    def steps(n: int) -> None:
        for _ in range(n):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    steps(10)  # warm-up: cuDNN's algorithm search, allocator
    torch.cuda.synchronize()
    start = time.perf_counter()
    steps(args.gpu_steps)
    torch.cuda.synchronize()
    rate = args.gpu_steps * args.gpu_batch / (time.perf_counter() - start)
    print(f"resnet18 224x224 bf16 channels-last fine-tuning on {name}, batch {args.gpu_batch}: {rate:,.0f} images/s")
    if peak is None:
        print("peak unknown for this GPU: pass --peak-tflops")
        return
    allowed = peak * 1e12 / (3 * 2 * RESNET18_GMACS * 1e9)
    print(f"peak {peak:g} TFLOP/s bf16 allows {allowed:,.0f} images/s at 3 x 1.82 GMACs: ratio {rate / allowed:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4096, help="synthetic CIFAR training images (CPU part)")
    parser.add_argument("--block", type=int, default=4, help="global batches per turn of each measurement")
    parser.add_argument("--gpu-batch", type=int, default=256, help="resnet18 batch of the GPU part")
    parser.add_argument("--gpu-steps", type=int, default=50, help="timed training steps of the GPU part")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak (default: from a table)")
    parser.add_argument("--skip-cpu", action="store_true", help="only the GPU part")
    args = parser.parse_args()
    if not args.skip_cpu:
        cpu_part(args)
    if torch.cuda.is_available():
        gpu_part(args)
    else:
        print("no CUDA here: the GPU part (resnet18 224x224 bf16 images/s and its ratio to peak) was not measured")


if __name__ == "__main__":
    main()
