"""Paired comparisons against scipy on the same arrays, Holm-Bonferroni by hand, power against published tables."""

import math

import numpy as np
import pytest
from report_sweeps import table, trial
from scipy import stats

from shrink.report.comparisons import COLUMNS, compare, holm, seeds_needed, strategy_pairs

METHOD, BASELINES = "global-gradient", ("global-magnitude", "random")
# Hand-chosen test top-1 over seeds 0-3 (one base): the method ties magnitude at 2x, loses to it at 4x and
# beats random at both.
TOP1 = {
    ("global-gradient", 2): (0.95, 0.96, 0.94, 0.955),
    ("global-magnitude", 2): (0.948, 0.961, 0.937, 0.957),
    ("random", 2): (0.90, 0.90, 0.885, 0.903),
    ("global-gradient", 4): (0.90, 0.91, 0.88, 0.905),
    ("global-magnitude", 4): (0.92, 0.935, 0.90, 0.93),
    ("random", 4): (0.70, 0.75, 0.72, 0.74),
}


def sweep(top1=TOP1, skip=()):
    """Trials of ``top1`` at compression 1 too (the control); ``skip`` leaves out (strategy, compression, seed)."""
    trials = [trial(s, c, seed, v) for (s, c), values in top1.items() for seed, v in enumerate(values)
              if (s, c, seed) not in skip]
    return table(trials + [trial(s, 1, seed, 0.98) for s in (METHOD, *BASELINES) for seed in range(4)])


@pytest.fixture(scope="module")
def comparisons():
    return compare(sweep(), (METHOD,)).set_index(["metric", "compression", "baseline"])


def test_one_row_per_metric_compression_and_baseline_with_the_issues_columns(comparisons):
    frame = comparisons.reset_index()
    assert list(compare(sweep(), (METHOD,)).columns) == list(COLUMNS) == [
        "dataset", "model", "metric", "compression", "method", "baseline", "test", "n", "mean_diff", "ci_low",
        "ci_high", "p_value", "p_holm", "verdict", "seeds_needed"]
    assert list(zip(frame["metric"], frame["compression"], frame["baseline"])) == [
        (m, c, b) for m in ("test_top1", "test_top5") for c in (2.0, 4.0) for b in BASELINES]
    assert set(frame["method"]) == {METHOD} and set(frame["test"]) == {"paired"} and set(frame["n"]) == {4}


def test_differences_intervals_and_p_values_equal_scipys(comparisons):
    for c in (2, 4):
        for baseline in BASELINES:
            method, base = np.array(TOP1[METHOD, c]), np.array(TOP1[baseline, c])
            expected = stats.ttest_rel(method, base)
            interval = expected.confidence_interval(0.95)
            row = comparisons.loc[("test_top1", c, baseline)]
            assert row["mean_diff"] == pytest.approx(np.mean(method - base), abs=1e-15)
            assert (row["ci_low"], row["ci_high"]) == pytest.approx((interval.low, interval.high), rel=1e-12)
            assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)


def test_holm_bonferroni_over_the_four_top1_rows_by_hand(comparisons):
    top1 = comparisons.loc["test_top1"]
    p = {key: stats.ttest_rel(TOP1[METHOD, key[0]], TOP1[key[1], key[0]]).pvalue for key in top1.index}
    # Ascending: random 2x, random 4x, magnitude 4x, magnitude 2x; factors 4, 3, 2, 1, each at least the last.
    order = [(2.0, "random"), (4.0, "random"), (4.0, "global-magnitude"), (2.0, "global-magnitude")]
    assert sorted(p, key=p.get) == order
    first = 4 * p[order[0]]
    second = max(first, 3 * p[order[1]])
    third = max(second, 2 * p[order[2]])  # 2 x p is below the second: Holm keeps the step-down monotone
    fourth = min(1.0, max(third, p[order[3]]))
    assert third == second
    for key, adjusted in zip(order, (first, second, third, fourth)):
        assert top1.loc[key, "p_holm"] == pytest.approx(adjusted, rel=1e-12)
    assert dict(top1["verdict"]) == {(2.0, "global-magnitude"): "indistinguishable", (2.0, "random"): "better",
                                     (4.0, "global-magnitude"): "worse", (4.0, "random"): "better"}


def test_equal_differences_have_no_test_and_stay_out_of_the_correction(comparisons):
    # Every trial's top-5 is 0.99: each difference is 0, so there is no test, no p and no verdict.
    top5 = comparisons.loc["test_top5"]
    assert top5["p_value"].isna().all() and top5["p_holm"].isna().all()
    assert set(top5["verdict"]) == {"untested"} and top5["seeds_needed"].isna().all()
    assert (top5[["mean_diff", "ci_low", "ci_high"]] == 0).all().all()  # a zero-width t-interval at 0
    # One equal row among tested ones: the other rows are corrected as a family of their own size.
    values = dict(TOP1) | {("global-magnitude", 2): tuple(v - 0.01 for v in TOP1[METHOD, 2])}
    rows = compare(sweep(values), (METHOD,)).set_index(["metric", "compression", "baseline"]).loc["test_top1"]
    assert math.isnan(rows.loc[(2.0, "global-magnitude"), "p_value"])
    assert rows.loc[(2.0, "global-magnitude"), "mean_diff"] == pytest.approx(0.01)
    tested = [(2.0, "random"), (4.0, "random"), (4.0, "global-magnitude")]
    p = [stats.ttest_rel(TOP1[METHOD, c], TOP1[b, c]).pvalue for c, b in tested]
    assert p == sorted(p)  # factors 3, 2, 1
    assert list(rows.loc[tested, "p_holm"]) == pytest.approx([3 * p[0], 2 * p[1], max(2 * p[1], p[2])], rel=1e-12)


def test_a_missing_pair_falls_back_to_welch_and_says_so():
    # random at 4x lost seed 3: its other three trials have partners, but the pairing would drop the method's seed 3.
    rows = compare(sweep(skip={("random", 4, 3)}), (METHOD,)).set_index(["metric", "compression", "baseline"])
    row = rows.loc[("test_top1", 4.0, "random")]
    method, base = np.array(TOP1[METHOD, 4]), np.array(TOP1["random", 4][:3])
    expected = stats.ttest_ind(method, base, equal_var=False)
    interval = expected.confidence_interval(0.95)
    assert (row["test"], row["n"]) == ("welch", 3)
    assert row["mean_diff"] == pytest.approx(method.mean() - base.mean(), abs=1e-15)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((interval.low, interval.high), rel=1e-12)
    assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert rows.loc[("test_top1", 2.0, "random"), "test"] == "paired"


def test_seeds_needed_match_published_power_tables():
    # Cohen (1988): two-sided 0.05, 80% power: d = 0.5 needs 64 per group, d = 1.0 needs 17; the paired
    # (one-sample) test needs 34 pairs for d = 0.5 and 10 for d = 1.0.
    assert [seeds_needed(d, paired=False) for d in (0.5, 1.0)] == [64, 17]
    assert [seeds_needed(d, paired=True) for d in (0.5, 1.0)] == [34, 10]
    assert seeds_needed(0.0, paired=True) is None and seeds_needed(0.01, paired=True) is None  # beyond 1024


def power(n: int, effect: float) -> float:
    """The paired t-test's power by brute force: the noncentral t's mass beyond both critical values (scipy's
    lower tail is NaN where it is negligible)."""
    critical = stats.t.ppf(0.975, n - 1)
    dist = stats.nct(n - 1, effect * math.sqrt(n))
    return dist.sf(critical) + np.nan_to_num(dist.cdf(-critical))


def test_seeds_needed_is_the_first_n_with_80_percent_power_for_the_observed_paired_difference(comparisons):
    # Method vs magnitude at 2x: the differences are noise, so many seeds would be needed.
    diff = np.array(TOP1[METHOD, 2]) - np.array(TOP1["global-magnitude", 2])
    effect = abs(diff.mean()) / diff.std(ddof=1)
    n = next(n for n in range(2, 1025) if power(n, effect) >= 0.8)
    assert power(n - 1, effect) < 0.8
    assert comparisons.loc[("test_top1", 2.0, "global-magnitude"), "seeds_needed"] == n == 180


def test_holm_leaves_missing_p_values_out():
    # Four tests and one without: factors 4, 3, 2, 1 over 0.005, 0.01, 0.03, 0.04.
    assert holm([0.01, float("nan"), 0.04, 0.03, 0.005]) == pytest.approx(
        [0.03, float("nan"), 0.06, 0.06, 0.02], nan_ok=True)
    assert list(holm([0.5, 0.9])) == [1.0, 1.0]  # capped at 1
    assert len(holm([])) == 0


def test_without_methods_every_pair_of_strategies_is_compared():
    assert strategy_pairs(["random", "global-magnitude", "global-gradient"], ()) == [
        ("global-gradient", "global-magnitude"), ("global-gradient", "random"), ("global-magnitude", "random")]
    assert strategy_pairs(["random", "global-magnitude", "global-gradient"], (METHOD,)) == [
        (METHOD, "global-magnitude"), (METHOD, "random")]
    frame = compare(sweep(), ())
    assert sorted(set(zip(frame["method"], frame["baseline"]))) == [
        ("global-gradient", "global-magnitude"), ("global-gradient", "random"), ("global-magnitude", "random")]
    assert len(frame) == 3 * 2 * 2  # pairs x compressions x metrics


def test_one_seed_or_one_strategy_gives_untested_rows_or_none():
    one_seed = compare(table([trial(s, 2, 0, v) for s, v in ((METHOD, 0.9), ("random", 0.8))]), (METHOD,))
    assert list(one_seed["verdict"]) == ["untested", "untested"] and one_seed["ci_low"].isna().all()
    alone = compare(table([trial("random", 2, seed, 0.8) for seed in range(3)]), ())
    assert alone.empty and list(alone.columns) == list(COLUMNS)
