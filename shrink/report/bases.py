"""The base as a factor (a sweep's ``bases:``): how much of a cell's spread is between bases rather than
within one, and which comparisons change their verdict from one base to another (Blalock et al. 2020,
Figure 8: two bases reverse the order of global and layer-wise magnitude).

A cell's variance is split with the one-way random-effects method of moments: with ``k`` bases, ``N``
trials, ``n_i`` of them on base ``i``, the mean squares between and within bases (``MSB``, ``MSW``) and
``n0 = (N - sum(n_i^2) / N) / (k - 1)``, the within-base variance is ``MSW`` and the between-base variance
``max(0, (MSB - MSW) / n0)``; ``p_value`` is the F test that the bases' means are equal
(``scipy.stats.f_oneway``).
"""

import numpy as np
import pandas as pd
from scipy import stats

from shrink.experiment.recording import Status
from shrink.report.comparisons import compare

BASE = "base_name"  # the trials table's column: the name of the sweep's base setting ("" without bases:)
CELL = ["dataset", "model", "strategy", "compression"]
VARIANCE_COLUMNS = (*CELL, "metric", "bases", "n", "mean", "between_var", "within_var", "between_share",
                    "p_value")
VERDICT_COLUMNS = ("dataset", "model", "metric", "compression", "method", "baseline", "verdicts", "agree")


def named_bases(trials: pd.DataFrame) -> list[str]:
    """The base names of the finished trials, in name order; empty for a sweep without ``bases:``."""
    finished = trials.loc[trials["status"] == Status.FINISHED, BASE]
    return sorted(name for name in finished.unique() if name)


def variance_by_base(trials: pd.DataFrame, metric: str = "test_top1") -> pd.DataFrame:
    """One row per cell (:data:`CELL`) whose finished trials span two bases or more, with :data:`VARIANCE_COLUMNS`:
    ``bases``, ``n`` (trials), ``mean``, ``between_var`` and ``within_var`` (see the module doc),
    ``between_share`` (between / (between + within); NaN when both are 0) and ``p_value`` (NaN when no base
    has two trials)."""
    finished = trials[(trials["status"] == Status.FINISHED) & (trials[BASE] != "")]
    rows = [_decompose(cell, group, metric) for cell, group in finished.groupby(CELL, sort=True)
            if group[BASE].nunique() >= 2]
    return pd.DataFrame(rows, columns=list(VARIANCE_COLUMNS)).astype(
        {"bases": "int64", "n": "int64", **dict.fromkeys(VARIANCE_COLUMNS[-5:], "float64")})


def _decompose(cell: tuple, group: pd.DataFrame, metric: str) -> dict:
    arms = [values.to_numpy(dtype=float) for _, values in group.groupby(BASE, sort=True)[metric]]
    sizes = np.array([len(arm) for arm in arms], dtype=float)
    k, total = len(arms), sizes.sum()
    grand = np.concatenate(arms).mean()
    msb = sum(n * (arm.mean() - grand) ** 2 for n, arm in zip(sizes, arms)) / (k - 1)
    within_df = total - k
    msw = sum(((arm - arm.mean()) ** 2).sum() for arm in arms) / within_df if within_df else np.nan
    n0 = (total - (sizes ** 2).sum() / total) / (k - 1)
    between = max(0.0, (msb - msw) / n0) if within_df else np.nan
    share = between / (between + msw) if within_df and between + msw > 0 else np.nan
    p_value = stats.f_oneway(*arms).pvalue if within_df and msw > 0 else np.nan
    return {**dict(zip(CELL, cell)), "metric": metric, "bases": k, "n": int(total), "mean": grand,
            "between_var": between, "within_var": msw, "between_share": share, "p_value": p_value}


def verdicts_by_base(trials: pd.DataFrame, methods: tuple[str, ...] | None) -> pd.DataFrame:
    """Every comparison of :func:`~shrink.report.comparisons.compare` made on each base's trials alone, one row
    per comparison that two bases or more make, with :data:`VERDICT_COLUMNS`: ``verdicts`` (``<base>:
    <verdict>`` for each base, in name order) and ``agree`` (False where the verdicts differ)."""
    per_base = [compare(trials[trials[BASE] == name], methods).assign(base=name) for name in named_bases(trials)]
    key = list(VERDICT_COLUMNS[:6])
    if not per_base:
        return pd.DataFrame(columns=list(VERDICT_COLUMNS))
    both = pd.concat(per_base, ignore_index=True)
    rows = [{**dict(zip(key, cell)), "verdicts": "; ".join(f"{b}: {v}" for b, v in zip(group["base"], group["verdict"])),
             "agree": group["verdict"].nunique() == 1}
            for cell, group in both.groupby(key, sort=True) if len(group) >= 2]
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS)).astype({"compression": "float64", "agree": "bool"})
