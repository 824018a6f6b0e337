"""Metrics: model size, multiply-accumulates, exact accuracy, a per-layer table, and measured latency."""

from shrink.metrics.accuracy import Counts, Scores, count_correct, evaluate
from shrink.metrics.latency import Latency, compare_latency, latency, measured_speedup
from shrink.metrics.layers import layer_table
from shrink.metrics.macs import layer_macs, macs, theoretical_speedup
from shrink.metrics.size import compression_ratio, model_size

__all__ = [
    "Counts",
    "count_correct",
    "Latency",
    "Scores",
    "compare_latency",
    "compression_ratio",
    "evaluate",
    "latency",
    "layer_macs",
    "layer_table",
    "macs",
    "measured_speedup",
    "model_size",
    "theoretical_speedup",
]
