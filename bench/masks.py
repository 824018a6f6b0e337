"""Benchmark: ``prune(model, "global-magnitude", c)`` on a 25.6M-parameter ResNet-50 (torchvision's
shape, random init, CPU) against a ShrinkBench-style numpy reference, in the same run.

The reference does what ShrinkBench's GlobalMagWeight does: size the model with numpy (ShrinkBench's
``fraction_to_keep`` calls ``model_size`` on the model and on every prunable layer, which counts the
nonzeros of each parameter with ``np.sum(a != 0)``), copy every prunable weight to numpy, take
``np.abs``, flatten and concatenate, ``np.quantile`` at the fraction to prune, build per-tensor masks by
comparing with the threshold, and multiply them into the weights. (ShrinkBench also prunes biases and
wraps layers in MaskedModules; the reference leaves both out.) The speedup is printed against the whole
reference and against the reference without its sizing, the stricter figure.

The two alternate on fresh models, ``--repeats`` times each. Printed per method: best and median wall
time, peak extra memory of the call, and the parameters left unpruned against the exact target
round(total / compression) (counted from the masks: a randomly initialized ResNet-50's BatchNorm biases
are zero, so counting nonzero values would be lower by their number).
Peak extra memory is the process's peak resident set during the call minus its resident set just
before (Linux ``VmHWM`` after resetting it through ``/proc/self/clear_refs``, with ``malloc_trim``
first), so it counts every allocation, torch's and numpy's alike, including the returned masks.

Targets: shrink at least 10x faster than the reference, peak extra memory under 2x the parameter bytes.

    python bench/masks.py [--compression 8] [--repeats 5] [--threads N]

On a busy machine, two torch threads can be many times slower than one (OpenMP threads wait for each
other), while the reference is mostly single-threaded numpy: ``--threads 1`` compares like with like.
"""

import argparse
import ctypes
import gc
import math
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shrink.pruning import prunable_layers, prune  # noqa: E402


def shrinkbench_style(model: torch.nn.Module, compression: float, timings: dict) -> dict[str, np.ndarray]:
    """Global magnitude pruning the ShrinkBench way: numpy sizes and copies, a quantile, per-tensor compares.
    Records the seconds spent sizing the model in ``timings["sizing"]``."""
    start = time.perf_counter()
    layers = prunable_layers(model)
    total, _ = _numpy_size(model.parameters())
    prunable = sum(_numpy_size(layer.parameters())[0] for layer in layers.values())
    prunable -= sum(layer.bias.numel() for layer in layers.values() if layer.bias is not None)
    timings["sizing"] = time.perf_counter() - start
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


def _numpy_size(params) -> tuple[int, int]:
    """(size, nonzero) of parameters, counted in numpy as ShrinkBench's model_size does."""
    arrays = [param.detach().cpu().numpy() for param in params]
    return sum(a.size for a in arrays), sum(int(np.sum(a != 0.0)) for a in arrays)


def _status_bytes(field: str) -> int:
    kib = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1)
    return int(kib) * 1024


def _measure(method, model: torch.nn.Module, compression: float) -> dict:
    """Wall seconds, peak extra resident bytes and parameters left unpruned of one pruning call, plus the
    method's own timings."""
    timings: dict = {}
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
    before = _status_bytes("VmRSS")
    start = time.perf_counter()
    masks = method(model, compression, timings)
    seconds = time.perf_counter() - start
    extra = _status_bytes("VmHWM") - before
    pruned = sum(int((mask == 0).sum()) for mask in masks.values())
    unpruned = sum(param.numel() for param in model.parameters()) - pruned
    return {"seconds": seconds, "extra": extra, "unpruned": unpruned, **timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compression", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    methods = {
        "shrink prune()": lambda model, c, _: prune(model, "global-magnitude", c),
        "numpy reference": shrinkbench_style,
    }
    runs: dict[str, list[dict]] = {name: [] for name in methods}
    for repeat in range(args.repeats):
        for name, method in methods.items():
            torch.manual_seed(repeat)
            model = torchvision.models.resnet50(weights=None)
            runs[name].append(_measure(method, model, args.compression))
            print(f"  run {repeat + 1}/{args.repeats} {name}: {runs[name][-1]['seconds'] * 1000:.0f} ms", flush=True)
    total = sum(param.numel() for param in model.parameters())
    param_bytes = sum(param.numel() * param.element_size() for param in model.parameters())
    target = math.floor(total / args.compression + 0.5)
    print(f"\nResNet-50: {total:,} parameters ({param_bytes / 2**20:.0f} MiB), compression "
          f"{args.compression:g}: target {target:,} unpruned; {args.threads} torch threads, {args.repeats} runs each")
    print(f"{'method':<28} {'best ms':>8} {'median ms':>10} {'peak extra MiB':>15} {'x params':>9} {'unpruned':>12}")
    seconds = {name: [run["seconds"] for run in method_runs] for name, method_runs in runs.items()}
    seconds["  reference without sizing"] = [run["seconds"] - run["sizing"] for run in runs["numpy reference"]]
    for name, times in seconds.items():
        line = f"{name:<28} {min(times) * 1000:8.1f} {statistics.median(times) * 1000:10.1f}"
        if name in runs:
            extra = max(run["extra"] for run in runs[name])
            line += f" {extra / 2**20:15.0f} {extra / param_bytes:9.2f} {runs[name][-1]['unpruned']:12,}"
        print(line)
    ours = seconds["shrink prune()"]
    for name in ("numpy reference", "  reference without sizing"):
        print(f"speedup vs {name.strip()}: best {min(seconds[name]) / min(ours):.1f}x, "
              f"median {statistics.median(seconds[name]) / statistics.median(ours):.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
