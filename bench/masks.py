"""Benchmark: ``prune(model, "global-magnitude", c)`` on a 25.6M-parameter ResNet-50 (torchvision's
shape, random init, CPU) against a ShrinkBench-style numpy reference, in the same run.

The reference does what ShrinkBench's GlobalMagWeight does: copy every prunable weight to numpy, take
``np.abs``, concatenate, ``np.quantile`` at the fraction to prune, build per-tensor masks by comparing with
the threshold, and multiply them into the weights. (ShrinkBench also copies every parameter to numpy to
count sizes, and prunes biases; the reference leaves both out, so it is a little faster than ShrinkBench.)

The two alternate on fresh models, ``--repeats`` times each. Printed per method: best and median wall
time, peak extra memory of the call, and the parameters left unpruned against the exact target
round(total / compression) (counted from the masks: a randomly initialized ResNet-50's BatchNorm biases
are zero, so counting nonzero values would be lower by their number).
Peak extra memory is the process's peak resident set during the call minus its resident set just
before (Linux ``VmHWM`` after resetting it through ``/proc/self/clear_refs``, with ``malloc_trim``
first), so it counts every allocation, torch's and numpy's alike, including the returned masks.

Targets: shrink at least 10x faster than the reference, peak extra memory under 2x the parameter bytes.

    python bench/masks.py [--compression 8] [--repeats 5] [--threads N]
"""

import argparse
import ctypes
import gc
import math
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

from shrink.pruning import prunable_layers, prune


def shrinkbench_style(model: torch.nn.Module, compression: float) -> dict[str, np.ndarray]:
    """Global magnitude pruning the ShrinkBench way: numpy copies, a quantile, per-tensor compares."""
    layers = prunable_layers(model)
    total = sum(param.numel() for param in model.parameters())
    prunable = sum(layer.weight.numel() for layer in layers.values())
    fraction = (total / compression - (total - prunable)) / prunable  # of prunable weights to keep
    importances = {name: np.abs(layer.weight.detach().cpu().numpy().copy()) for name, layer in layers.items()}
    threshold = np.quantile(np.concatenate([imp.flatten() for imp in importances.values()]), 1 - fraction)
    masks = {}
    for name, importance in importances.items():
        mask = np.ones_like(importance)
        mask[np.logical_and(importance < threshold, importance > -threshold)] = 0
        masks[name] = mask
    with torch.no_grad():
        for name, layer in layers.items():
            layer.weight.mul_(torch.from_numpy(masks[name]))
    return masks


def _status_bytes(field: str) -> int:
    kib = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1)
    return int(kib) * 1024


def _measure(method, model: torch.nn.Module, compression: float) -> tuple[float, int, int]:
    """Wall seconds, peak extra resident bytes and the parameters left unpruned by one pruning call."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
    before = _status_bytes("VmRSS")
    start = time.perf_counter()
    result = method(model, compression)
    seconds = time.perf_counter() - start
    extra = _status_bytes("VmHWM") - before
    pruned = sum(int((mask == 0).sum()) for mask in result.values())
    return seconds, extra, sum(param.numel() for param in model.parameters()) - pruned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compression", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    methods = {
        "shrink prune()": lambda model, c: prune(model, "global-magnitude", c),
        "numpy reference": shrinkbench_style,
    }
    results: dict[str, list[tuple[float, int, int]]] = {name: [] for name in methods}
    for repeat in range(args.repeats):
        for name, method in methods.items():
            torch.manual_seed(repeat)
            model = torchvision.models.resnet50(weights=None)
            results[name].append(_measure(method, model, args.compression))
            print(f"  run {repeat + 1}/{args.repeats} {name}: {results[name][-1][0] * 1000:.0f} ms", flush=True)
            del model

    model = torchvision.models.resnet50(weights=None)
    total = sum(param.numel() for param in model.parameters())
    param_bytes = sum(param.numel() * param.element_size() for param in model.parameters())
    target = math.floor(total / args.compression + 0.5)
    print(f"\nResNet-50: {total:,} parameters ({param_bytes / 2**20:.0f} MiB), compression {args.compression:g}: "
          f"target {target:,} unpruned; {args.threads} torch threads, {args.repeats} runs each")
    print(f"{'method':<16} {'best ms':>8} {'median ms':>10} {'peak extra MiB':>15} {'x params':>9} {'unpruned':>12}")
    best, median = {}, {}
    for name, runs in results.items():
        seconds = [run[0] for run in runs]
        best[name], median[name] = min(seconds), statistics.median(seconds)
        extra = max(run[1] for run in runs)
        print(f"{name:<16} {best[name] * 1000:8.1f} {median[name] * 1000:10.1f} {extra / 2**20:15.0f} "
              f"{extra / param_bytes:9.2f} {runs[-1][2]:12,}")
    ours, reference = methods
    print(f"\nspeedup (reference / shrink): best {best[reference] / best[ours]:.1f}x, "
          f"median {median[reference] / median[ours]:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
