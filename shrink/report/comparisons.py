"""Paired comparisons: is a method better than a baseline at a compression, or is that seed noise?

Trials of two strategies with the same base checkpoint and seed saw the same pruning batch and the
same data order, so their difference cancels what the base and the seed contribute: the paired t-test
on those differences is the test that matches the design. Where some trial has no partner (a failed
or missing seed), pairing would drop data silently, so the comparison falls back to Welch's unpaired
test on every trial and says so. Within one (dataset, model, metric) every row is a hypothesis of the
same report, so the p-values are corrected together (Holm-Bonferroni, which controls the family-wise
error without assuming independence); a row whose differences are all equal has no test and stays
out of the correction. Every distribution comes from ``scipy.stats``.
"""

from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from shrink.experiment.recording import Status
from shrink.pruning.names import is_baseline
from shrink.report.intervals import t_interval

METRICS = ("test_top1", "test_top5")
PAIR = ["base_sha256", "seed"]  # what makes two trials a pair
ALPHA, POWER = 0.05, 0.8
MAX_SEEDS = 1024  # seeds_needed beyond this is left empty
EQUAL = 1e-9  # differences closer than this are equal (one test image in 10^9)
KEY = ["dataset", "model", "metric", "compression", "method", "baseline"]
COLUMNS = (*KEY, "test", "n", "mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "verdict", "seeds_needed")


@dataclass(frozen=True)
class Test:
    """One comparison before the correction: method minus baseline over ``n`` pairs; NaN ``p_value``: no
    test (fewer than two values, or all differences equal)."""

    test: str  # "paired", or "welch" where some trial has no partner
    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    seeds_needed: int | None


def default_methods(strategies) -> tuple[str, ...]:
    """The proposed methods of a sweep that recorded none: its strategies that are not built-in baselines."""
    return tuple(s for s in sorted(set(strategies)) if not is_baseline(s))


def strategy_pairs(strategies, methods: tuple[str, ...]) -> list[tuple[str, str]]:
    """(method, baseline) to compare: each method against each strategy that is not one; with no methods,
    every pair of strategies (in name order)."""
    present = sorted(set(strategies))
    if not methods:
        return list(combinations(present, 2))
    return [(m, b) for m in present if m in methods for b in present if b not in methods]


def seeds_needed(effect: float, paired: bool) -> int | None:
    """The fewest seeds per arm (2 to :data:`MAX_SEEDS`) at which the two-sided t-test at :data:`ALPHA`
    detects the standardized difference ``effect`` with :data:`POWER`: paired on n pairs (noncentral t,
    df n - 1, noncentrality effect * sqrt(n)) or two-sample with n per arm (df 2n - 2, effect * sqrt(n/2)).
    None when ``effect`` is not positive or no n up to the cap suffices."""
    if not effect > 0:
        return None

    def power(n):
        df = n - 1 if paired else 2 * n - 2
        noncentrality = effect * np.sqrt(n if paired else n / 2)
        critical = stats.t.ppf(1 - ALPHA / 2, df)
        # The lower tail as the upper tail of the mirrored distribution: nct.cdf(-c) returns NaN for large
        # noncentralities (scipy 1.17), nct.sf(c, df, -nc) does not.
        return stats.nct.sf(critical, df, noncentrality) + stats.nct.sf(critical, df, -noncentrality)

    coarse = 2 ** np.arange(1, int(np.log2(MAX_SEEDS)) + 1)
    enough = coarse[power(coarse) >= POWER]
    if not len(enough):
        return None
    fine = np.arange(max(2, enough[0] // 2), enough[0] + 1)
    return int(fine[np.argmax(power(fine) >= POWER)])


def paired_test(method: np.ndarray, baseline: np.ndarray) -> Test:
    """The paired t-test and 95% t-interval of the mean difference of aligned arrays."""
    diff = method - baseline
    n, mean = len(diff), float(diff.mean())
    std = float(diff.std(ddof=1)) if n > 1 else float("nan")
    if n < 2 or np.ptp(diff) <= EQUAL:
        low, high = t_interval(mean, 0.0, n)
        return Test("paired", n, mean, float(low), float(high), float("nan"), None)
    result = stats.ttest_rel(method, baseline)
    interval = result.confidence_interval(0.95)
    return Test("paired", n, mean, float(interval.low), float(interval.high), float(result.pvalue),
                seeds_needed(abs(mean) / std, paired=True))


def welch_test(method: np.ndarray, baseline: np.ndarray, pairs: int) -> Test:
    """Welch's unpaired t-test and its 95% interval of the difference of means; ``pairs`` is recorded as n."""
    mean = float(method.mean() - baseline.mean())
    spread = np.sqrt((method.var(ddof=1) + baseline.var(ddof=1)) / 2) if min(len(method), len(baseline)) > 1 else 0.0
    if not spread > EQUAL:
        return Test("welch", pairs, mean, float("nan"), float("nan"), float("nan"), None)
    result = stats.ttest_ind(method, baseline, equal_var=False)
    interval = result.confidence_interval(0.95)
    return Test("welch", pairs, mean, float(interval.low), float(interval.high), float(result.pvalue),
                seeds_needed(abs(mean) / spread, paired=False))


def compare_arms(method: np.ndarray, baseline: np.ndarray) -> Test:
    """Two arms aligned on :data:`PAIR` (NaN where an arm has no trial): paired where every trial of either
    has a partner, Welch otherwise."""
    has_a, has_b = ~np.isnan(method), ~np.isnan(baseline)
    if not (has_a ^ has_b).any():
        return paired_test(method[has_a], baseline[has_b])
    return welch_test(method[has_a], baseline[has_b], int((has_a & has_b).sum()))


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values; NaN entries (no test) are left out and stay NaN."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    factors = len(order) - np.arange(len(order))
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(factors * p[order]))
    return adjusted


def _verdicts(frame: pd.DataFrame) -> pd.Series:
    significant = frame["p_holm"] < ALPHA
    verdict = np.where(significant & (frame["mean_diff"] > 0), "better",
                       np.where(significant, "worse", "indistinguishable"))
    return pd.Series(np.where(frame["p_holm"].isna(), "untested", verdict), index=frame.index)


def _tests(point: pd.DataFrame, methods: tuple[str, ...]):
    """(metric, method, baseline, Test) for every metric and pair of strategies of one compression's trials."""
    wide = point.groupby(["strategy", *PAIR])[list(METRICS)].mean().unstack("strategy")  # a row per pair
    for metric in METRICS:
        arms = wide[metric].dropna(axis=1, how="all")
        values = dict(zip(arms.columns, arms.to_numpy(dtype=float).T))
        for method, baseline in strategy_pairs(values, methods):
            yield metric, method, baseline, compare_arms(values[method], values[baseline])


def where(rows: pd.DataFrame) -> str:
    """Where comparison ``rows`` are, for a sentence: ``<baseline> at 2x, 4x and <baseline> at 8x``."""
    return " and ".join(f"{baseline} at {', '.join(f'{c:g}x' for c in group['compression'])}"
                        for baseline, group in rows.groupby("baseline", sort=True))


def compare(trials: pd.DataFrame, methods: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The comparisons table of the finished trials at every compression > 1 (see :data:`COLUMNS`).

    One row per (dataset, model, metric, compression, method, baseline) for metrics :data:`METRICS`:
    ``test`` (``paired`` or ``welch``), ``n`` (pairs), ``mean_diff`` (method minus baseline, a fraction),
    ``ci_low``/``ci_high`` (its 95% t-interval), ``p_value`` (two-sided), ``p_holm`` (:func:`holm` over the
    rows of one dataset, model and metric), ``verdict`` (``better``/``worse`` where ``p_holm`` < 0.05,
    ``indistinguishable`` otherwise, ``untested`` without a test) and ``seeds_needed`` (:func:`seeds_needed`
    for the observed difference and spread). ``methods`` as in :func:`strategy_pairs`; None (a sweep that
    recorded none): :func:`default_methods`. Trials repeated in one cell (a sweep records one) are averaged.
    """
    pruned = (trials["status"] == Status.FINISHED) & (trials["compression"] > 1)
    finished = trials.loc[pruned, ["dataset", "model", "compression", "strategy", *PAIR, *METRICS]]
    if methods is None:
        methods = default_methods(finished["strategy"])
    rows = [
        {"dataset": dataset, "model": model, "metric": metric, "compression": compression,
         "method": method, "baseline": baseline, **asdict(test)}
        for (dataset, model, compression), point in finished.groupby(["dataset", "model", "compression"], sort=True)
        for metric, method, baseline, test in _tests(point, tuple(methods))
    ]
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("p_holm", "verdict")])
    frame = frame.sort_values(KEY, kind="stable").reset_index(drop=True)
    frame["p_holm"] = frame.groupby(["dataset", "model", "metric"])["p_value"].transform(holm)
    frame["verdict"] = _verdicts(frame)
    types = {"compression": "float64", "n": "int64", "mean_diff": "float64", "ci_low": "float64",
             "ci_high": "float64", "p_value": "float64", "p_holm": "float64", "seeds_needed": "Int64"}
    return frame[list(COLUMNS)].astype(types | {c: "str" for c in (*KEY, "test", "verdict") if c not in types})
