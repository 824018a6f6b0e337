"""Measured speedup of structured pruning: dense vs physically pruned vs masked, in one run.

resnet56 (CIFAR shape, 3x32x32) and torchvision resnet18 (ImageNet shape, 3x224x224), pruned with
``channel-l1`` at 2x and 4x; forward latency at batch 1 and 64 on CPU (and on CUDA when present).
Weights are freshly initialised (no trained weights are available offline): latency does not
depend on the values, only the channels chosen do.

    python bench/structured.py [--repeats 10] [--warmup 3] [--models resnet56,resnet18] [--threads N]

Prints one row per (model, compression, device, batch): median milliseconds (interquartile range)
of the dense, the physically pruned and the masked model, and the speedups over dense. The three
models' passes are interleaved, so a busy machine slows them alike; the ratios are the figures.
On a shared machine, ``--threads 1`` gives much steadier figures than competing for every core.
"""

import argparse
import copy
import sys

import torch

from shrink import models, pruning
from shrink.metrics import compare_latency, measured_speedup
from shrink.pruning.channels import physically_prune

COMPRESSIONS = (2.0, 4.0)
BATCHES = (1, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet56,resnet18")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{'model':9} {'ratio':>6} {'params':>10} {'device':40} {'batch':>5} "
          f"{'dense ms':>16} {'pruned ms':>16} {'masked ms':>16} {'pruned x':>8} {'masked x':>8}")
    for name in args.models.split(","):
        shape = models.info(name).input_shape
        torch.manual_seed(0)
        dense = models.create(name).eval()
        example = torch.randn(2, *shape)
        for compression in COMPRESSIONS:
            masked = copy.deepcopy(dense)
            masks = pruning.prune(masked, "channel-l1", compression, inputs=example)
            small = physically_prune(masked, masks, example)
            params = sum(p.numel() for p in small.parameters())
            achieved = sum(p.numel() for p in dense.parameters()) / params
            for device in devices:
                _progress(f"{name} {compression:g}x on {device}")
                timed = compare_latency({"dense": dense, "pruned": small, "masked": masked}, shape, BATCHES,
                                        device=device, warmup=args.warmup, repeats=args.repeats)
                pruned_x = measured_speedup(timed["dense"], timed["pruned"])
                masked_x = measured_speedup(timed["dense"], timed["masked"])
                for batch in BATCHES:
                    cells = [f"{timed[k][batch].median_ms:9.2f} ({timed[k][batch].iqr_ms:5.2f})" for k in ("dense", "pruned", "masked")]
                    print(f"{name:9} {achieved:6.2f} {params:10,d} {timed['dense'][batch].device[:40]:40} {batch:5d} "
                          f"{' '.join(f'{c:>16}' for c in cells)} {pruned_x[batch]:8.2f} {masked_x[batch]:8.2f}", flush=True)


def _progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
