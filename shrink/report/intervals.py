"""Means over seeds with their spread and 95% Student-t intervals: the one formula every table uses."""

import numpy as np
import pandas as pd
from scipy import stats

STATS = ("mean", "std", "stderr", "ci_low", "ci_high")
CONFIDENCE = 0.95


def t_interval(mean, std, count) -> tuple:
    """The 95% Student-t interval of a mean from the sample std and count (arrays or numbers):
    ``mean ± t(0.975, count - 1) * std / sqrt(count)``; NaN for one value, zero width for equal values."""
    count = np.asarray(count, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = stats.t.ppf((1 + CONFIDENCE) / 2, count - 1) * std / np.sqrt(count)
    return mean - half, mean + half


def describe(frame: pd.DataFrame, keys: list[str], metrics) -> pd.DataFrame:
    """``<metric>_mean``, ``_std`` (sample, ddof=1: NaN for one value), ``_stderr`` (std / sqrt(n)) and
    ``_ci_low``/``_ci_high`` (:func:`t_interval`) of each metric per group of ``keys``."""
    grouped = frame.groupby(keys, sort=True, dropna=False)[list(metrics)]
    mean, std, count = grouped.mean(), grouped.std(ddof=1), grouped.count()
    low, high = t_interval(mean, std, count)
    tables = dict(zip(STATS, (mean, std, std / np.sqrt(count), low, high)))
    return pd.DataFrame({f"{m}_{s}": tables[s][m] for m in metrics for s in STATS}, index=mean.index)
