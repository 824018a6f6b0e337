"""Measured latency: wall-clock time of one forward pass, and the speedup it shows.

Zeros in a dense tensor cost as much as any other value, so masks alone give no speedup on dense
kernels; only a physically smaller model (structured pruning) runs faster. This module measures
rather than counts: after warm-up passes it times each pass (CUDA events on a GPU, a monotonic
clock on CPU) and reports the median and interquartile range, recorded with the device's name.
Models compared with each other are timed with their passes interleaved (:func:`compare_latency`).
"""

import copy
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class Latency:
    """Forward-pass time of one batch size on one device."""

    device: str  # e.g. "cpu: AMD EPYC 7B13 (2 threads)" or "cuda: NVIDIA H100 80GB HBM3"
    batch_size: int
    median_ms: float
    iqr_ms: float  # interquartile range of the timed passes: the spread
    repeats: int


def latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_sizes: tuple[int, ...] = (1, 64),
    *,
    device: str | torch.device | None = None,
    warmup: int = 5,
    repeats: int = 20,
) -> dict[int, Latency]:
    """Time ``model``'s forward pass on random inputs of shape ``(batch, *input_shape)``, per batch size.

    ``device`` defaults to where the model's parameters are; another device times a copy moved
    there. The model runs in eval mode under ``torch.inference_mode`` and is left as it was.
    """
    return compare_latency({"model": model}, input_shape, batch_sizes, device=device, warmup=warmup, repeats=repeats)["model"]


def compare_latency(
    models: dict[str, nn.Module],
    input_shape: tuple[int, ...],
    batch_sizes: tuple[int, ...] = (1, 64),
    *,
    device: str | torch.device | None = None,
    warmup: int = 5,
    repeats: int = 20,
    channels_last: bool = False,
) -> dict[str, dict[int, Latency]]:
    """:func:`latency` of several models on the same inputs, their passes interleaved (one pass of each
    model per repeat), so that a slow phase of a shared machine slows them alike and their ratio holds.
    ``channels_last``: image inputs in channels-last memory, as a trial that trains so feeds them."""
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"input_shape must be positive ints without the batch dimension, e.g. (3, 32, 32); got {input_shape}")
    if not batch_sizes or not all(isinstance(b, int) and b > 0 for b in batch_sizes):
        raise ValueError(f"batch_sizes must be positive ints, got {batch_sizes}")
    if warmup < 0 or repeats < 3:
        raise ValueError(f"need warmup >= 0 and repeats >= 3 (for a spread), got warmup={warmup}, repeats={repeats}")
    if not models:
        raise ValueError("no models to time")
    first = next(iter(models.values()))
    target = torch.device(device) if device is not None else next(first.parameters(), torch.empty(0)).device
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {target} requested but CUDA is not available on this machine")
    placed = {label: _on(model, target) for label, model in models.items()}
    name = device_name(target)
    generator = torch.Generator(device=target).manual_seed(0)
    modes = {label: model.training for label, model in placed.items()}
    for model in placed.values():
        model.eval()
    try:
        with torch.inference_mode():
            results = {label: {} for label in placed}
            for batch in batch_sizes:
                x = torch.randn((batch, *shape), generator=generator, device=target)
                if channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                for _ in range(warmup):
                    for model in placed.values():
                        model(x)
                times = {label: [] for label in placed}
                for _ in range(repeats):
                    for label, model in placed.items():
                        times[label].append(_time_once(model, x))
                for label, taken in times.items():
                    q1, _, q3 = statistics.quantiles(taken, n=4)
                    results[label][batch] = Latency(name, batch, statistics.median(taken), q3 - q1, repeats)
            return results
    finally:
        for label, model in placed.items():
            model.train(modes[label])


def measured_speedup(dense: dict[int, Latency], pruned: dict[int, Latency]) -> dict[int, float]:
    """Dense median latency over pruned median latency, per batch size (both measured on one device)."""
    if dense.keys() != pruned.keys():
        raise ValueError(f"batch sizes differ: dense {sorted(dense)}, pruned {sorted(pruned)}")
    devices = {t.device for t in (*dense.values(), *pruned.values())}
    if len(devices) > 1:
        raise ValueError(f"latencies were measured on different devices: {sorted(devices)}")
    return {batch: dense[batch].median_ms / pruned[batch].median_ms for batch in dense}


def device_name(device: torch.device) -> str:
    """A readable name of the device: the GPU model, or the CPU model and torch's thread count."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {_cpu_model()} ({torch.get_num_threads()} threads)"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def same_device(a: torch.device, b: torch.device, *, current: int | None = None) -> bool:
    """Whether ``a`` and ``b`` are one device: the same type and index, a device without an index being
    the current CUDA device (``current``, default torch's) or CPU 0. (``torch.device("cuda:0") ==
    torch.device("cuda")`` is False even when GPU 0 is the current device.)"""
    if a.type != b.type:
        return False
    if a.index == b.index or None not in (a.index, b.index):
        return a.index == b.index
    default = 0 if a.type != "cuda" else torch.cuda.current_device() if current is None else current
    return (default if a.index is None else a.index) == (default if b.index is None else b.index)


def _on(model: nn.Module, device: torch.device) -> nn.Module:
    """The model itself when it is on ``device``, else a copy moved there."""
    here = next(model.parameters(), torch.empty(0)).device
    return model if same_device(here, device) else copy.deepcopy(model).to(device)


def _time_once(model: nn.Module, x: torch.Tensor) -> float:
    """Milliseconds of one forward pass (CUDA events on a GPU, a monotonic clock on CPU)."""
    if x.device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(x.device)
        start.record()
        model(x)
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    start = time.perf_counter()
    model(x)
    return (time.perf_counter() - start) * 1e3
