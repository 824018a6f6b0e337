"""Measured speedup: the dense base against the deployable pruned model, timed on one device.

``shrink trial`` times the pair at its end (phase ``in-trial``). A sweep's trials share devices, so there a
trial saves its pair instead (:func:`save_pair`, under ``TrialConfig.latency_dir``, one folder per machine)
and the orchestrator times every saved pair of a machine one after another once no trial runs anywhere
(phase ``exclusive``, :func:`time_saved_pair`), logging the figures to the trial's finished run. Either way
the pair runs under the trial's autocast and memory format, and the conditions are recorded with it
(:class:`TimingConditions`).
"""

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from shrink.experiment import recording
from shrink.experiment.loop import Compute

BATCHES, WARMUP, REPEATS = (1, 64), 3, 10  # batch sizes; untimed and timed forward passes of each model
IN_TRIAL, EXCLUSIVE = "in-trial", "exclusive"  # TimingConditions.phase


@dataclass(frozen=True)
class TimingConditions:
    """How a pair was timed, recorded as the run's ``latency.*`` params."""

    phase: str  # IN_TRIAL, or EXCLUSIVE: after every trial of the sweep, one pair at a time per machine
    device: str  # shrink.metrics.device_name: the GPU model, or the CPU model and thread count
    amp: str  # the autocast it ran under: runtime.AmpMode (off, bf16, fp16)
    channels_last: bool

    def params(self) -> dict[str, str]:
        return {"latency.phase": self.phase, "latency.device": self.device, "latency.amp": self.amp,
                "latency.channels_last": str(self.channels_last)}


@dataclass(frozen=True)
class Timed:
    """A pair's figures (the run's metrics) and how they were taken."""

    metrics: dict[str, float]  # measured_speedup, measured_speedup_b1, latency_ms, dense_latency_ms
    conditions: TimingConditions


@dataclass
class LatencyPair:
    """What timing needs, saved by a sweep's trial for the exclusive phase: both models, the input shape
    without the batch dimension, how the trial computed, its threads and where its run is."""

    dense: nn.Module
    pruned: nn.Module
    input_shape: tuple[int, ...]
    compute: Compute
    threads: int | None
    tracking_uri: str
    run_id: str


def time_pair(dense: nn.Module, pruned: nn.Module, input_shape: tuple[int, ...], compute: Compute,
              phase: str) -> Timed:
    """Dense over pruned median forward time at batch 64 (``measured_speedup``) and 1 (``_b1``), their passes
    interleaved, on ``compute``'s device, autocast and memory format."""
    from shrink import metrics

    models = {"dense": compute.prepare(dense), "pruned": compute.prepare(pruned)}
    with compute.autocast():
        timed = metrics.compare_latency(models, input_shape, BATCHES, device=compute.device, warmup=WARMUP,
                                        repeats=REPEATS, channels_last=compute.channels_last)
    speedup = metrics.measured_speedup(timed["dense"], timed["pruned"])
    conditions = TimingConditions(phase, timed["pruned"][64].device, compute.amp.value, compute.channels_last)
    return Timed({"measured_speedup": speedup[64], "measured_speedup_b1": speedup[1],
                  "latency_ms": timed["pruned"][64].median_ms, "dense_latency_ms": timed["dense"][64].median_ms},
                 conditions)


def pair_folder(latency_dir: str | Path) -> Path:
    """This machine's folder of saved pairs: one per host, since trials on one host share its devices."""
    return Path(latency_dir) / socket.gethostname()


def save_pair(pair: LatencyPair, latency_dir: str | Path) -> Path:
    """Write ``pair`` to ``<latency_dir>/<host>/<run id>.pt`` (written whole, then renamed into place)."""
    folder = pair_folder(latency_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pair.run_id}.pt"
    partial = path.with_suffix(".partial")
    torch.save(pair, partial)
    partial.replace(path)
    return path


def saved_pairs(folder: Path) -> list[Path]:
    """The pairs saved in one host's folder, oldest run id first."""
    return sorted(folder.glob("*.pt"))


def time_saved_pair(path: Path) -> Timed:
    """Time a saved pair in the exclusive phase, log it to its run (figures, conditions and the tag
    ``shrink.latency_window``), then delete the file: a driver stopped before that times it again."""
    pair: LatencyPair = torch.load(path, map_location="cpu", weights_only=False)
    if pair.threads is not None:
        torch.set_num_threads(pair.threads)
    started = time.time()
    timed = time_pair(pair.dense, pair.pruned, pair.input_shape, pair.compute, EXCLUSIVE)
    recording.record_latency(pair.tracking_uri, pair.run_id, timed.metrics, timed.conditions.params(),
                             (started, time.time()))
    path.unlink()
    return timed
