"""The Appendix B checklist: each item fails for the reason it names."""

import math

import numpy as np
import pytest
from click.testing import CliRunner
from report_sweeps import table, trial, write_sweep
from scipy import stats

from shrink.cli import main
from shrink.report.checklist import format_checklist, run_checklist

COMPRESSIONS = (1, 2, 4, 8, 16, 32)
RATES = {  # top-1 lost per doubling of compression
    "global-magnitude": 0.01, "random": 0.05, "global-gradient": 0.015,
    "random-matched:global-gradient": 0.04, "magnitude-matched:global-gradient": 0.012,
}


def noise(strategy: str, compression: float, seed: int) -> float:
    """Seed noise of a pruned trial: -0.1, 0 or +0.1 points (mean 0 over three seeds) in one of two orders (by
    the parity of the strategy name's length), so most paired differences vary; none at compression 1 (the
    fine-tuned control equals the base)."""
    if compression == 1:
        return 0.0
    return 0.001 * ((seed * (len(strategy) % 2 + 1)) % 3 - 1)


def complete(rates=RATES, compressions=COMPRESSIONS, seeds=(0, 1, 2)):
    """Trials of a sweep that passes every item, unless the strategies and their top-1 lost per
    doubling (``rates``), the compressions or the seeds say otherwise."""
    return [trial(s, c, seed, 0.98 - rate * math.log2(c) + noise(s, c, seed))
            for s, rate in rates.items() for c in compressions for seed in seeds]


def only(*strategies):
    return {s: RATES[s] for s in strategies}


def verdicts(trials, methods=("global-gradient",)):
    return {item.name: (item.passed, item.reason) for item in run_checklist(table(trials), methods)}


def failing(trials, methods=("global-gradient",)):
    return {name: reason for name, (passed, reason) in verdicts(trials, methods).items() if not passed}


def test_a_complete_sweep_passes_every_item():
    result = verdicts(complete())
    assert all(passed for passed, _ in result.values()), result
    assert len(result) == 13
    assert result["operating points"][1] == (
        ">= 5 compressions > 1 per strategy; mnist/lenet-300-100 drops up to 25.0 points")
    assert result["matched baselines"][1] == "matched baselines present for global-gradient"
    assert result["seeds"][1] == "every point has >= 3 seeds (min 3); mean and std in the summary"
    assert result["fine-tuned control"][1] == (
        "the fine-tuned control (compression 1) does not beat the base beyond its interval: mnist/lenet-300-100 "
        "gains +0.00 points (95% t-interval +0.00 to +0.00, 3 base-seed pairs)")
    # global-gradient loses 1.5 points per doubling, random 5 and random-matched 4: better than both everywhere.
    assert result["significant advantage"][1] == (
        "global-gradient is better than random at 2x, 4x, 8x, 16x, 32x and random-matched:global-gradient at 2x, "
        "4x, 8x, 16x, 32x (p_holm < 0.05); mnist/lenet-300-100 rests on one base (abababababab): the order of "
        "strategies can change with the base (Blalock et al. 2020, Figure 8); train one base per seed to see it "
        "hold across bases")


def test_missing_random_baseline_fails_that_item_only():
    assert failing(complete(only(*(s for s in RATES if s != "random")))) == {
        "random baseline": "no random-pruning baseline (random or layer-random) for mnist/lenet-300-100"}


def test_two_seeds_fail_the_seeds_item():
    assert failing(complete(seeds=(0, 1))) == {"seeds": (
        "30 of 30 points have fewer than 3 seeds: global-gradient at 1x (2), global-gradient at 2x (2), "
        "global-gradient at 4x (2), global-gradient at 8x (2) and 26 more")}


def test_missing_magnitude_baseline_and_matched_baseline():
    assert failing(complete(only("random", "global-gradient", "random-matched:global-gradient"))) == {
        "magnitude baseline": "no magnitude baseline (global-magnitude or layer-magnitude) for mnist/lenet-300-100",
        "matched baselines": "missing magnitude-matched:global-gradient (mnist/lenet-300-100)",
    }


def test_the_papers_baselines_alone_need_no_matched_baselines():
    # The demo's strategies, recorded without methods: all five are built-in baselines.
    demo = {"global-magnitude": 0.01, "layer-magnitude": 0.012, "global-gradient": 0.015, "layer-gradient": 0.02,
            "random": 0.05}
    assert verdicts(complete(demo), methods=None)["matched baselines"] == (True, (
        "no proposed methods (every strategy is a built-in baseline, or the sweep's methods: names none): "
        "no matched baselines needed"))


def test_matched_baselines_are_asked_of_the_proposed_methods_only():
    rates = only("global-magnitude", "random") | {"global-activation": 0.012}
    # Not recorded: every strategy that is not a built-in baseline is a proposed method.
    assert failing(complete(rates), methods=None) == {"matched baselines": (
        "missing random-matched:global-activation, magnitude-matched:global-activation (mnist/lenet-300-100)")}
    assert failing(complete(rates), methods=()) == {}  # the sweep named no methods
    gradient = only("global-magnitude", "random", "global-gradient", "random-matched:global-gradient")
    assert failing(complete(gradient)) == {  # global-gradient named as the method: both families needed
        "matched baselines": "missing magnitude-matched:global-gradient (mnist/lenet-300-100)"}


def test_a_channel_method_needs_no_per_weight_matched_baselines():
    rates = only("global-magnitude", "random") | {"layer-channel-l1": 0.02}
    assert verdicts(complete(rates), methods=("layer-channel-l1",))["matched baselines"] == (True, (
        "layer-channel-l1 removes whole channels: per-weight matched baselines do not apply"))


def test_operating_points_need_five_compressions_and_a_substantial_drop():
    assert failing(complete(compressions=(1, 2, 4, 8, 16))) == {"operating points": (
        "mnist/lenet-300-100: fewer than 5 compressions > 1 for global-gradient (4), global-magnitude (4), "
        "magnitude-matched:global-gradient (4), random (4), random-matched:global-gradient (4)")}
    gentle = complete({"global-magnitude": 0.005, "random": 0.009})  # at most 4.5 points lost
    assert failing(gentle) == {
        "operating points": "mnist/lenet-300-100: largest mean top-1 drop 4.5 points, none reaches 5"}


def test_different_bases_across_strategies_fail():
    trials = complete()
    for t in trials:
        if t["params"]["strategy"] == "random" and t["params"]["seed"] == "1":
            t["tags"]["shrink.base_sha256"] = "cd" * 32
    assert failing(trials) == {"same base checkpoint": (
        "strategies start from different base checkpoints at mnist/lenet-300-100 seed 1")}


def test_unrecorded_metrics_and_tags_fail():
    trials = complete()
    del trials[0]["tags"]["shrink.hardware"]
    del trials[1]["metrics"]["theoretical_speedup"]
    del trials[2]["metrics"]["dense_test_top1"]
    assert failing(trials) == {
        "library and hardware": "1 of 90 finished trials lack versions and hardware (versions, hardware)",
        "compression and speedup": "1 of 90 finished trials lack both metrics (compression_ratio, theoretical_speedup)",
        "dense control": ("1 of 90 finished trials lack dense metrics "
                          "(dense_test_top1, dense_test_top5, dense_val_top1)"),
    }


def test_top5_is_required_only_for_datasets_with_many_classes():
    mnist = complete()
    for t in mnist[:4]:
        del t["metrics"]["test_top5"]
    assert verdicts(mnist)["top-5"] == (
        True, "top-5 missing only on datasets with <= 10 classes, where it is not required")
    many = complete() + [trial("random", 2, 0, 0.5, dataset="cifar100"), trial("random", 2, 0, 0.5, dataset="tiny")]
    for t in many[-2:]:
        del t["metrics"]["test_top5"]
    assert verdicts(many)["top-5"] == (
        False, "top-5 missing on cifar100 (100 classes, 1 without top-5), tiny (class count unknown, 1 without top-5)")


def test_bases_trained_elsewhere_fail_the_held_out_validation_item():
    trials = complete()
    assert verdicts(trials)["validation held out"] == (
        True, "every base was pretrained by shrink without the validation carve-out")
    for t in trials:
        t["tags"]["shrink.base_source"] = "torchvision:IMAGENET1K_V1"
    assert failing(trials) == {"validation held out": (
        "the validation carve-out was part of the training data of base torchvision:IMAGENET1K_V1 (trained "
        "elsewhere, as in the paper's ImageNet setup): validation scores, and early stopping on them, are optimistic")}


def test_no_finished_trials_fails_everything():
    items = run_checklist(table([trial("random", 2, 0, 0.0, failure="diverged")]))
    assert [(i.passed, i.reason) for i in items] == [(False, "no finished trials")] * 13


def test_format_is_one_line_per_item():
    text = format_checklist(run_checklist(table(complete(seeds=(0, 1)))))
    lines = text.splitlines()
    assert len(lines) == 14
    assert lines[0] == "item                     result  why"
    assert lines[2].startswith("seeds                    FAIL    30 of 30 points")


@pytest.fixture(scope="module")
def check_store(make_store):
    uri = make_store()
    write_sweep(uri, "complete", complete(only("global-magnitude", "random")))
    # global-activation without matched baselines: fails unless the sweep recorded other methods.
    activation = complete(only("global-magnitude", "random") | {"global-activation": 0.012})
    write_sweep(uri, "unmatched", activation)
    write_sweep(uri, "no-methods", activation, methods=[])
    write_sweep(uri, "two-seeds", complete(only("global-magnitude", "random"), seeds=(0, 1)))
    return uri


def test_check_command_strict_exit_status(check_store):
    runner = CliRunner()
    ok = runner.invoke(main, ["check", "complete", "--strict", "--tracking-uri", check_store])
    assert ok.exit_code == 0, ok.output
    assert "seeds                    PASS" in ok.output
    lax = runner.invoke(main, ["check", "two-seeds", "--tracking-uri", check_store])
    assert lax.exit_code == 0 and "seeds                    FAIL    12 of 12 points" in lax.output
    strict = runner.invoke(main, ["check", "two-seeds", "--strict", "--tracking-uri", check_store])
    assert strict.exit_code == 1
    assert strict.output.endswith("1 of 13 checklist items failed\n")


def test_check_reads_the_methods_the_sweep_recorded(check_store):
    runner = CliRunner()
    recorded = runner.invoke(main, ["check", "no-methods", "--strict", "--tracking-uri", check_store])
    assert recorded.exit_code == 0, recorded.output
    assert "matched baselines        PASS    no proposed methods" in recorded.output
    unrecorded = runner.invoke(main, ["check", "unmatched", "--strict", "--tracking-uri", check_store])
    assert unrecorded.exit_code == 1
    assert ("matched baselines        FAIL    missing random-matched:global-activation, "
            "magnitude-matched:global-activation (mnist/lenet-300-100)") in unrecorded.output


def test_a_fine_tuned_control_beyond_its_interval_means_the_base_did_not_converge():
    gains = (0.008, 0.010, 0.013)  # the compression-1 trials score 0.8-1.3 points above their base's 98%
    trials = complete()
    for t in trials:
        if t["params"]["compression"] == "1":
            t["metrics"]["test_top1"] = 0.98 + gains[int(t["params"]["seed"])]
    interval = stats.ttest_1samp(gains, 0).confidence_interval(0.95)
    assert interval.low > 0
    assert failing(trials) == {"fine-tuned control": (
        f"mnist/lenet-300-100: base not converged: the fine-tuned control beats it by +1.03 points (95% t-interval "
        f"{100 * interval.low:+.2f} to {100 * interval.high:+.2f}, 3 base-seed pairs); read delta_top1_vs_control, "
        "not delta_top1")}
    trials[0]["metrics"]["test_top1"] = 0.98 - 0.03  # one strategy's control at seed 0: the pair's mean counts
    gains = ((0.008 * 4 - 0.03) / 5, 0.010, 0.013)
    interval = stats.ttest_1samp(gains, 0).confidence_interval(0.95)
    assert interval.low < 0
    assert verdicts(trials)["fine-tuned control"] == (True, (
        f"the fine-tuned control (compression 1) does not beat the base beyond its interval: mnist/lenet-300-100 "
        f"gains {100 * np.mean(gains):+.2f} points (95% t-interval {100 * interval.low:+.2f} to "
        f"{100 * interval.high:+.2f}, 3 base-seed pairs)"))


def test_without_compression_1_or_with_one_seed_the_control_cannot_tell():
    assert failing(complete(compressions=(2, 4, 8, 16, 32, 64)))["fine-tuned control"] == (
        "mnist/lenet-300-100: no compression-1 trials; add compression 1 to the grid for the fine-tuned control")
    assert failing(complete(seeds=(0,)))["fine-tuned control"] == (
        "mnist/lenet-300-100: one base and seed at compression 1, no interval to tell whether the base converged "
        "(control +0.00 points (1 base-seed pair))")


def test_an_advantage_within_seed_noise_is_not_a_pass():
    # global-gradient ahead of random by 0.2 points on average at 2x, with one seed behind; a base per seed.
    diffs = (0.01, -0.005, 0.002)
    trials = [trial(s, 2, seed, 0.9 + (d if s == "global-gradient" else 0), base=f"base{seed}")
              for s in ("global-gradient", "random") for seed, d in enumerate(diffs)]
    p = stats.ttest_rel(np.array(diffs) + 0.9, [0.9] * 3).pvalue
    assert p > 0.05
    assert verdicts(trials)["significant advantage"] == (False, (
        "global-gradient: no advantage with p_holm < 0.05; ahead only within noise, or untested, against random at 2x"))
    assert verdicts(trials, methods=())["significant advantage"] == (True, (
        "no proposed methods, so no advantage claimed; comparisons.parquet compares every pair of strategies"))
