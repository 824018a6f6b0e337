"""Metrics: model size, multiply-accumulates, exact accuracy, and a per-layer table."""

from shrink.metrics.accuracy import evaluate
from shrink.metrics.layers import layer_table
from shrink.metrics.macs import layer_macs, macs, theoretical_speedup
from shrink.metrics.size import compression_ratio, model_size

__all__ = [
    "compression_ratio",
    "evaluate",
    "layer_macs",
    "layer_table",
    "macs",
    "model_size",
    "theoretical_speedup",
]
