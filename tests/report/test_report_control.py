"""The fine-tuned control: each trial against the compression-1 trial of its base and seed."""

import math

import pytest
from report_sweeps import table, trial
from scipy import stats

from shrink.report.control import finetuned_controls


def test_each_trial_is_compared_with_the_control_of_its_own_base_and_seed():
    controls = {0: 0.97, 1: 0.99}  # one base per seed
    trials = table([trial("random", 1, seed, top1, base=f"base{seed}", test_top5=top1)
                    for seed, top1 in controls.items()]
                   + [trial("random", 4, seed, 0.90 + 0.01 * seed, base=f"base{seed}") for seed in (0, 1, 2)])
    rows = trials.set_index(["compression", "seed"])
    assert rows.loc[(4.0, 0), "delta_top1_vs_control"] == pytest.approx(0.90 - 0.97, abs=1e-12)
    assert rows.loc[(4.0, 1), "delta_top1_vs_control"] == pytest.approx(0.91 - 0.99, abs=1e-12)
    assert rows.loc[(4.0, 1), "delta_top5_vs_control"] == pytest.approx(0.99 - 0.99, abs=1e-12)
    assert math.isnan(rows.loc[(4.0, 2), "delta_top1_vs_control"])  # seed 2 has no control
    assert rows.loc[(1.0, 0), "delta_top1_vs_control"] == 0


def test_the_control_is_matched_whatever_its_strategy_and_failed_trials_do_not_count():
    # One shared compression-1 run (recorded under global-magnitude) serves random too; a control of another
    # base, one of another model and a failed one never match.
    trials = table([
        trial("global-magnitude", 1, 0, 0.97),
        trial("random", 1, 0, 0.10, base="cd" * 32),
        trial("random", 1, 0, 0.20, model="lenet-5"),
        trial("layer-random", 1, 0, 0.0, failure="diverged"),
        trial("random", 4, 0, 0.80),
    ])
    row = trials.set_index(["strategy", "compression", "model", "base_sha256"]).sort_index()
    assert row.loc[("random", 4.0, "lenet-300-100", "ab" * 32), "delta_top1_vs_control"] == pytest.approx(
        0.80 - 0.97, abs=1e-12)
    # Two strategies' compression-1 trials of one base and seed: their mean.
    both = table([trial("global-magnitude", 1, 0, 0.97), trial("random", 1, 0, 0.98), trial("random", 4, 0, 0.80)])
    assert both.iloc[-1]["delta_top1_vs_control"] == pytest.approx(0.80 - 0.975, abs=1e-12)


def test_the_fine_tuned_gain_has_a_t_interval_over_base_seed_pairs():
    # Bases at 98%; controls at +0.5, +1.0, +1.2 points (seed 1's two strategies 0.8 and 1.2 average to 1.0).
    trials = table([trial("global-magnitude", 1, 0, 0.985), trial("global-magnitude", 1, 1, 0.988),
                    trial("random", 1, 1, 0.992), trial("random", 1, 2, 0.992)])
    [control] = finetuned_controls(trials)
    gains = [0.005, 0.010, 0.012]
    expected = stats.ttest_1samp(gains, 0).confidence_interval(0.95)
    assert (control.dataset, control.model, control.pairs) == ("mnist", "lenet-300-100", 3)
    assert control.gain == pytest.approx(sum(gains) / 3, abs=1e-12)
    assert (control.ci_low, control.ci_high) == pytest.approx((expected.low, expected.high), rel=1e-9)
    assert control.converged is False and expected.low > 0
    assert control.described() == (f"+0.90 points (95% t-interval {100 * expected.low:+.2f} to "
                                    f"{100 * expected.high:+.2f}, 3 base-seed pairs)")
    [one] = finetuned_controls(table([trial("random", 1, 0, 0.99)]))
    assert one.pairs == 1 and one.converged is None and one.described() == "+1.00 points (1 base-seed pair)"
    assert finetuned_controls(table([trial("random", 2, 0, 0.9)])) == []
