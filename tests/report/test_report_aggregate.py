"""Summary over seeds: exact means, sample stds, standard errors and t-intervals against a hand computation
and scipy; the Pareto mark."""

import math

import pytest
from report_sweeps import small_sweep, table, trial
from scipy import stats

from shrink.report.aggregate import GROUP, SUMMARY_METRICS, dense_controls, summarize
from shrink.report.intervals import STATS


@pytest.fixture(scope="module")
def summary():
    return summarize(table(small_sweep())).set_index(["strategy", "compression"])


def test_one_row_per_group_with_fixed_columns(summary):
    assert list(summary.index) == [("global-magnitude", 1.0), ("global-magnitude", 2.0), ("global-magnitude", 4.0),
                                   ("random", 1.0), ("random", 2.0), ("random", 4.0)]
    columns = list(summarize(table(small_sweep())).columns)
    assert columns[:7] == [*GROUP, "count", "failed", "running"]
    assert columns[7:] == [*(f"{m}_{s}" for m in SUMMARY_METRICS for s in STATS), "pareto"]


def test_mean_sample_std_and_stderr_match_hand_computation(summary):
    # global-magnitude 4x: top-1 0.90, 0.92, 0.97 -> mean 0.93, squared deviations 9+1+16 (1e-4),
    # sample variance 26e-4 / 2 = 13e-4.
    row = summary.loc[("global-magnitude", 4.0)]
    assert row["test_top1_mean"] == pytest.approx(0.93, abs=1e-12)
    assert row["test_top1_std"] == pytest.approx(math.sqrt(13e-4), abs=1e-12)
    assert row["test_top1_stderr"] == pytest.approx(math.sqrt(13e-4) / math.sqrt(3), abs=1e-12)
    assert row["delta_top1_mean"] == pytest.approx(0.93 - 0.98, abs=1e-12)
    assert row["theoretical_speedup_mean"] == pytest.approx(3.4) and row["theoretical_speedup_std"] == 0
    assert row["wall_time_s_mean"] == 11.0 and row["wall_time_s_std"] == 1.0  # 10, 11, 12 s
    # global-magnitude 2x: 0.95, 0.96, 0.97 -> 0.96 +- 0.01
    row = summary.loc[("global-magnitude", 2.0)]
    assert (row["test_top1_mean"], row["test_top1_std"]) == pytest.approx((0.96, 0.01), abs=1e-12)


def test_failed_trials_are_counted_not_averaged(summary):
    # random 4x: finished 0.5, 0.7, 0.6 (-> 0.6 +- 0.1); the failed seed 3 is only counted.
    row = summary.loc[("random", 4.0)]
    assert (row["count"], row["failed"], row["running"]) == (3, 1, 0)
    assert (row["test_top1_mean"], row["test_top1_std"]) == pytest.approx((0.6, 0.1), abs=1e-12)
    assert summary.loc[("random", 2.0), "failed"] == 0


def test_single_trial_has_undefined_std_and_all_failed_group_keeps_a_row():
    trials = table([trial("random", 2, 0, 0.5), trial("random", 4, 0, 0.0, failure="diverged")])
    summary = summarize(trials).set_index("compression")
    assert summary.loc[2.0, "count"] == 1 and summary.loc[2.0, "test_top1_mean"] == 0.5
    assert math.isnan(summary.loc[2.0, "test_top1_std"]) and math.isnan(summary.loc[2.0, "test_top1_stderr"])
    assert (summary.loc[4.0, "count"], summary.loc[4.0, "failed"]) == (0, 1)
    assert math.isnan(summary.loc[4.0, "test_top1_mean"])


def test_dense_controls_per_dataset_and_model():
    trials = table([trial("random", 2, s, 0.5, dense=d, base=f"base{s}") for s, d in enumerate((0.97, 0.98, 0.99))]
                   + [trial("random", 2, 9, 0.0, failure="diverged", dense=0.10)])
    controls = dense_controls(trials)
    assert len(controls) == 1
    row = controls.iloc[0]
    assert (row["dataset"], row["model"], row["count"], row["bases"]) == ("mnist", "lenet-300-100", 3, 3)
    assert (row["dense_test_top1_mean"], row["dense_test_top1_std"]) == pytest.approx((0.98, 0.01), abs=1e-12)


def test_dense_control_spread_is_over_distinct_bases_not_trials():
    # Three bases (97, 98, 99%) with 5, 1 and 2 finished trials: one value per base, so the mean is
    # 98% and the sample std 1 point. Over the 8 trials it would be 97.625% +- 0.92 (pseudo-replication,
    # weighted by how many trials of each base finished).
    plan = {"base0": (0.97, 5), "base1": (0.98, 1), "base2": (0.99, 2)}
    trials = [trial("random", 2, seed, 0.5, dense=dense, base=base)
              for base, (dense, n) in plan.items() for seed in range(n)]
    row = dense_controls(table(trials)).iloc[0]
    assert (row["count"], row["bases"]) == (8, 3)
    assert row["dense_test_top1_mean"] == pytest.approx(0.98, abs=1e-12)
    assert row["dense_test_top1_std"] == pytest.approx(0.01, abs=1e-12)
    assert row["dense_test_top1_stderr"] == pytest.approx(0.01 / math.sqrt(3), abs=1e-12)


def test_summary_intervals_are_scipys_t_intervals_of_each_mean(summary):
    # global-magnitude 4x: 0.90, 0.92, 0.97; the same interval from scipy's one-sample t-test.
    expected = stats.ttest_1samp([0.90, 0.92, 0.97], 0).confidence_interval(0.95)
    row = summary.loc[("global-magnitude", 4.0)]
    assert (row["test_top1_ci_low"], row["test_top1_ci_high"]) == pytest.approx((expected.low, expected.high),
                                                                                rel=1e-12)
    delta = stats.ttest_1samp([0.90 - 0.98, 0.92 - 0.98, 0.97 - 0.98], 0).confidence_interval(0.95)
    assert (row["delta_top1_ci_low"], row["delta_top1_ci_high"]) == pytest.approx((delta.low, delta.high), rel=1e-12)
    # Equal values: a zero-width interval; one trial: none.
    assert (summary.loc[("global-magnitude", 1.0), "test_top1_ci_low"],
            summary.loc[("global-magnitude", 1.0), "test_top1_ci_high"]) == pytest.approx((0.98, 0.98))
    single = summarize(table([trial("random", 2, 0, 0.5)])).iloc[0]
    assert math.isnan(single["test_top1_ci_low"]) and math.isnan(single["test_top1_ci_high"])


def test_summary_means_of_the_difference_from_the_fine_tuned_control(summary):
    # random 4x: 0.5, 0.7, 0.6 against controls of 0.98 at every seed.
    row = summary.loc[("random", 4.0)]
    assert row["delta_top1_vs_control_mean"] == pytest.approx(0.6 - 0.98, abs=1e-12)
    assert row["delta_top1_vs_control_std"] == pytest.approx(0.1, abs=1e-12)


def test_pareto_optimal_points_are_those_no_other_beats_in_compression_and_top1():
    # Achieved compression and top-1 per (strategy, nominal compression), one seed each:
    # a 2x (2.0, 0.95), a 4x (4.0, 0.90), b 2x (2.1, 0.94): not beaten by a's 2x, which compresses less;
    # b 4x (3.9, 0.89): a's 4x compresses more and scores higher; c 2x (2.0, 0.95): ties a's 2x, both optimal.
    points = {("a", 2): (2.0, 0.95), ("a", 4): (4.0, 0.90), ("b", 2): (2.1, 0.94), ("b", 4): (3.9, 0.89),
              ("c", 2): (2.0, 0.95), ("a", 1): (1.0, 0.99)}
    trials = table([trial(s, c, 0, top1, compression_ratio=ratio) for (s, c), (ratio, top1) in points.items()])
    optimal = summarize(trials).set_index(["strategy", "compression"])["pareto"]
    assert dict(optimal) == {("a", 1.0): False, ("a", 2.0): True, ("a", 4.0): True, ("b", 2.0): True,
                             ("b", 4.0): False, ("c", 2.0): True}
