"""Aggregate the per-trial table over seeds: one row per (dataset, model, strategy, compression)."""

import numpy as np
import pandas as pd

GROUP = ["dataset", "model", "strategy", "compression"]
STATUSES = ("finished", "failed", "running")
SUMMARY_METRICS = (
    "test_top1", "test_top5", "delta_top1", "delta_top5", "dense_test_top1",
    "compression_ratio", "theoretical_speedup", "measured_speedup", "epochs_run", "wall_time_s",
)
STATS = ("mean", "std", "stderr")


def _stats(finished: pd.DataFrame, keys: list[str], metrics) -> pd.DataFrame:
    """``<metric>_mean``, ``_std`` (sample, ddof=1: NaN for one trial) and ``_stderr`` per group."""
    grouped = finished.groupby(keys, sort=True, dropna=False)[list(metrics)]
    mean, std, count = grouped.mean(), grouped.std(ddof=1), grouped.count()
    stderr = std / np.sqrt(count)
    parts = {f"{m}_{s}": table[m] for m in metrics for s, table in zip(STATS, (mean, std, stderr))}
    return pd.DataFrame(parts, index=mean.index)


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    """The summary table over seeds.

    Columns: the group keys ``dataset, model, strategy, compression``; ``count`` (finished
    trials, the ones averaged), ``failed`` and ``running`` (counted, never averaged); then
    ``<metric>_mean``, ``<metric>_std`` and ``<metric>_stderr`` (std / sqrt(count)) for each of
    :data:`SUMMARY_METRICS`. Groups whose trials all failed keep a row with NaN statistics.
    """
    counts = (
        trials.groupby([*GROUP, "status"], sort=True, dropna=False).size()
        .unstack("status", fill_value=0)
        .reindex(columns=list(STATUSES), fill_value=0)
        .rename(columns={"finished": "count"})
    )
    finished = trials[trials["status"] == "finished"]
    summary = counts.join(_stats(finished, GROUP, SUMMARY_METRICS), how="left")
    summary.columns.name = None
    return summary.reset_index().astype({"count": "int64", "failed": "int64", "running": "int64"})


def dense_controls(trials: pd.DataFrame) -> pd.DataFrame:
    """The dense control per (dataset, model), over its distinct base checkpoints.

    Every trial of one base evaluates the same dense model, so a base contributes one value (the
    mean of its finished trials, which agree): the spread is over bases, never over trials, which
    would repeat each base as often as its trials finished (pseudo-replication, narrower bands).
    Columns: ``dataset, model, count`` (finished trials), ``bases`` (distinct base checkpoints) and
    mean/std/stderr over the bases of ``dense_test_top1`` and ``dense_test_top5``.
    """
    finished = trials[trials["status"] == "finished"]
    keys = ["dataset", "model"]
    grouped = finished.groupby(keys, sort=True, dropna=False)
    head = pd.DataFrame({"count": grouped.size(), "bases": grouped["base_sha256"].nunique()})
    metrics = ["dense_test_top1", "dense_test_top5"]
    per_base = finished.groupby([*keys, "base_sha256"], sort=True, dropna=False)[metrics].mean().reset_index()
    return head.join(_stats(per_base, keys, metrics)).reset_index()
