"""Aggregate the per-trial table over seeds: one row per (dataset, model, strategy, compression)."""

import pandas as pd

from shrink.experiment.recording import Status
from shrink.report.control import CONTROL_DELTAS
from shrink.report.intervals import describe

GROUP = ["dataset", "model", "strategy", "compression"]
STATUSES = tuple(status.value for status in Status)
SUMMARY_METRICS = (
    "test_top1", "test_top5", "delta_top1", "delta_top5", *CONTROL_DELTAS, "dense_test_top1",
    "compression_ratio", "theoretical_speedup", "measured_speedup", "epochs_run", "wall_time_s",
)


def pareto(summary: pd.DataFrame) -> pd.Series:
    """Whether each summary row is Pareto-optimal in its (dataset, model): a pruned point (compression > 1)
    that no other pruned point beats in mean achieved compression and mean test top-1 together (at least
    as good in both, better in one). Rows without finished trials are never optimal."""
    optimal = pd.Series(False, index=summary.index)
    points = summary[(summary["compression"] > 1)].dropna(subset=["compression_ratio_mean", "test_top1_mean"])
    for _, group in points.groupby(["dataset", "model"], sort=False):
        c, a = group["compression_ratio_mean"].to_numpy(), group["test_top1_mean"].to_numpy()
        no_worse = (c[None, :] >= c[:, None]) & (a[None, :] >= a[:, None])
        better = (c[None, :] > c[:, None]) | (a[None, :] > a[:, None])
        optimal[group.index] = ~(no_worse & better).any(axis=1)
    return optimal


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    """The summary table over seeds.

    Columns: the group keys ``dataset, model, strategy, compression``; ``count`` (finished
    trials, the ones averaged), ``failed`` and ``running`` (counted, never averaged); then
    ``<metric>_mean``, ``_std``, ``_stderr``, ``_ci_low`` and ``_ci_high`` (the 95% t-interval of the
    mean; see :func:`~shrink.report.intervals.describe`) for each of :data:`SUMMARY_METRICS`; last
    ``pareto`` (see :func:`pareto`). Groups whose trials all failed keep a row with NaN statistics.
    """
    counts = (
        trials.groupby([*GROUP, "status"], sort=True, dropna=False).size()
        .unstack("status", fill_value=0)
        .reindex(columns=list(STATUSES), fill_value=0)
        .rename(columns={"finished": "count"})
    )
    finished = trials[trials["status"] == Status.FINISHED]
    summary = counts.join(describe(finished, GROUP, SUMMARY_METRICS), how="left")
    summary.columns.name = None
    summary = summary.reset_index().astype({"count": "int64", "failed": "int64", "running": "int64"})
    return summary.assign(pareto=pareto(summary))


def dense_controls(trials: pd.DataFrame) -> pd.DataFrame:
    """The dense control per (dataset, model), over its distinct base checkpoints.

    Every trial of one base evaluates the same dense model, so a base contributes one value (the
    mean of its finished trials, which agree): the spread is over bases, never over trials, which
    would repeat each base as often as its trials finished (pseudo-replication, narrower bands).
    Columns: ``dataset, model, count`` (finished trials), ``bases`` (distinct base checkpoints) and
    the :func:`~shrink.report.intervals.describe` statistics over the bases of ``dense_test_top1`` and
    ``dense_test_top5``.
    """
    finished = trials[trials["status"] == Status.FINISHED]
    keys = ["dataset", "model"]
    grouped = finished.groupby(keys, sort=True, dropna=False)
    head = pd.DataFrame({"count": grouped.size(), "bases": grouped["base_sha256"].nunique()})
    metrics = ["dense_test_top1", "dense_test_top5"]
    per_base = finished.groupby([*keys, "base_sha256"], sort=True, dropna=False)[metrics].mean().reset_index()
    return head.join(describe(per_base, keys, metrics)).reset_index()
