"""Figure content: stable strategy styles, log2 ticks, std or t-interval error bars, dense band, paper legend."""

import math

import pytest
from matplotlib.collections import PathCollection
from report_sweeps import table, trial
from scipy import stats

from shrink.report.aggregate import dense_controls, summarize
from shrink.report.literature import load_literature
from shrink.report.plots import ERROR_BARS, STYLES, measured_speedup_differs, plot_figure, strategy_style


def test_styles_are_fixed_per_strategy_whatever_the_order():
    assert strategy_style("global-magnitude") == {"color": "tab:blue", "marker": "o", "linestyle": "-"}
    names = ["my-plugin", "other-plugin", "random"]
    first = [strategy_style(n) for n in names]
    assert [strategy_style(n) for n in reversed(names)] == list(reversed(first))
    assert strategy_style("random-matched:global-gradient") == {"color": "tab:orange", "marker": "x", "linestyle": ":"}
    assert strategy_style("magnitude-matched:my-plugin")["color"] == strategy_style("my-plugin")["color"]
    assert len({c for c, _ in STYLES.values()}) == len(STYLES)  # built-ins never share a colour


def _figure(compressions, seeds_top1, papers=None, measured=2.0):
    """Each seed prunes its own base (dense 97, 98, 99%); channel-like measured speedups by default."""
    trials = table([trial("global-magnitude", c, seed, top1, dense=0.97 + 0.01 * seed, base=f"base{seed}",
                          dataset="cifar10", model="resnet56", measured_speedup=measured)
                    for c in compressions for seed, top1 in enumerate(seeds_top1)])
    summary, control = summarize(trials), dense_controls(trials).iloc[0]
    return plot_figure(summary, control, papers)


def test_axes_are_log2_with_ticks_from_1_to_32_extended_to_the_data():
    fig = _figure((1, 2, 4), (0.9, 0.9, 0.9))
    compression, speedup, measured = fig.axes[:3]
    assert compression.get_xscale() == "log"
    assert list(compression.get_xticks()) == [1, 2, 4, 8, 16, 32]
    assert compression.get_xlabel().startswith("compression ratio (log2 scale)\n= original parameters / nonzero")
    assert speedup.get_xlabel().endswith("= original multiply-adds / nonzero multiply-adds")
    assert measured.get_xlabel().endswith("= dense / pruned forward time, batch 64")
    wide = _figure((1, 100), (0.9, 0.9, 0.9))
    assert list(wide.axes[0].get_xticks()) == [2.0**k for k in range(8)]  # up to 128


def test_error_bars_are_the_sample_std_and_the_band_is_dense_mean_pm_std():
    # top-1 0.90, 0.92, 0.97: mean 93%, std sqrt(13)%. Dense 97, 98, 99%: one value per base (each
    # base has 2 trials, one per compression), so the band is 98 +- 1 (not the std over 6 trials).
    fig = _figure((1, 2), (0.90, 0.92, 0.97))
    ax = fig.axes[0]
    bars = ax.containers[0].lines[2][0].get_segments()
    assert [y for s in bars for y in (s[0][1], s[1][1])] == pytest.approx([93 - math.sqrt(13), 93 + math.sqrt(13)] * 2)
    band = ax.patches[0]
    assert (band.get_y(), band.get_height()) == pytest.approx((97, 2))
    assert fig.legends[0].get_texts()[-1].get_text() == "dense control: 98.00 ± 1.00 % (over 3 bases)"


def test_published_points_are_labelled_with_their_own_baselines():
    literature = load_literature()
    papers = literature[(literature["dataset"] == "cifar10") & (literature["model"] == "resnet56")]
    fig = _figure((1, 2), (0.9, 0.9, 0.9), papers)
    assert len(fig.axes) == 5 and fig.axes[3].get_ylabel() == "change in test top-1 vs. dense (points)"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == 12
    assert "pcas (dense 93.04%)" in labels and "apple-pfa (dense not reported)" in labels
    plotted = sum(len(c.get_offsets()) for ax in fig.axes[3:] for c in ax.collections if isinstance(c, PathCollection))
    assert plotted == papers["compression"].notna().sum() + papers["speedup"].notna().sum()


def test_the_third_panel_plots_top1_against_measured_speedup():
    # Channel pruning: measured 1.6x at 2x and 2.5x at 4x; the masked magnitude model measures 1.0x.
    measured = {("layer-channel-l1", 2): 1.6, ("layer-channel-l1", 4): 2.5, ("global-magnitude", 2): 1.0,
                ("global-magnitude", 4): 1.0}
    trials = table([trial(s, c, seed, 0.9, measured_speedup=measured[s, c]) for s, c in measured for seed in (0, 1)])
    fig = plot_figure(summarize(trials), dense_controls(trials).iloc[0])
    panel = fig.axes[2]
    assert panel.get_xlabel().startswith("measured speedup (log2 scale)")
    curves = sorted(tuple(map(float, bars.lines[0].get_xdata())) for bars in panel.containers)
    assert curves == [(1.0, 1.0), (1.6, 2.5)]


def test_the_measured_speedup_panel_is_left_out_when_every_point_is_about_1x():
    # Masked weights on dense kernels: 0.97-1.05x, within timing noise of 1x at every point.
    noise = {(2, 0): 0.97, (2, 1): 1.03, (4, 0): 1.05, (4, 1): 0.99}
    trials = table([trial(s, c, seed, 0.9, measured_speedup=noise[c, seed])
                    for s in ("global-magnitude", "random") for c, seed in noise])
    summary = summarize(trials)
    assert not measured_speedup_differs(summary)
    fig = plot_figure(summary, dense_controls(trials).iloc[0])
    assert [ax.get_xlabel().split(" (")[0] for ax in fig.axes] == ["compression ratio", "theoretical speedup"]
    # One strategy 1.6x at 4x with a small spread: the panel is back.
    faster = table([*[trial("global-magnitude", c, seed, 0.9, measured_speedup=noise[c, seed]) for c, seed in noise],
                    trial("layer-channel-l1", 4, 0, 0.9, measured_speedup=1.55),
                    trial("layer-channel-l1", 4, 1, 0.9, measured_speedup=1.65)])
    assert measured_speedup_differs(summarize(faster))
    assert len(plot_figure(summarize(faster), dense_controls(faster).iloc[0]).axes) == 3


def test_a_measured_speedup_within_twice_its_spread_does_not_count():
    # 1.3x mean, but seeds at 1.0, 1.3, 1.6: sample std 0.3, spread 0.6 > 0.3.
    wide = table([trial("random", 4, seed, 0.9, measured_speedup=m) for seed, m in enumerate((1.0, 1.3, 1.6))])
    assert not measured_speedup_differs(summarize(wide))
    # 1.3x with seeds 1.28, 1.30, 1.32: std 0.02, spread 0.25 (the timing-noise floor) < 0.3.
    tight = table([trial("random", 4, seed, 0.9, measured_speedup=m) for seed, m in enumerate((1.28, 1.3, 1.32))])
    # 1.2x with the same tight seeds: within the timing-noise floor.
    noisy = table([trial("random", 4, seed, 0.9, measured_speedup=m) for seed, m in enumerate((1.18, 1.2, 1.22))])
    assert not measured_speedup_differs(summarize(noisy))
    assert measured_speedup_differs(summarize(tight))


def test_ci_error_bars_are_scipys_t_intervals_and_the_band_the_dense_controls():
    # top-1 0.90, 0.92, 0.97 on three bases at 97, 98 and 99%.
    trials = table([trial("global-magnitude", c, seed, top1, dense=0.97 + 0.01 * seed, base=f"base{seed}")
                    for c in (1, 2) for seed, top1 in enumerate((0.90, 0.92, 0.97))])
    fig = plot_figure(summarize(trials), dense_controls(trials).iloc[0], error_bars="ci")
    ax = fig.axes[0]
    interval = stats.ttest_1samp([0.90, 0.92, 0.97], 0).confidence_interval(0.95)
    bars = ax.containers[0].lines[2][0].get_segments()
    assert [y for s in bars for y in (s[0][1], s[1][1])] == pytest.approx([100 * interval.low, 100 * interval.high] * 2)
    dense = stats.ttest_1samp([0.97, 0.98, 0.99], 0).confidence_interval(0.95)
    band = ax.patches[0]
    assert (band.get_y(), band.get_y() + band.get_height()) == pytest.approx((100 * dense.low, 100 * dense.high))
    assert fig.legends[0].get_texts()[-1].get_text() == (
        f"dense control: 98.00 % (over 3 bases, 95% CI {100 * dense.low:.2f}-{100 * dense.high:.2f})")
    assert fig.get_suptitle().startswith("mnist / lenet-300-100: mean and 95% t-interval of the mean over seeds")


def test_the_cli_offers_exactly_the_error_bars_the_figures_draw():
    from shrink.cli import main

    [option] = [p for p in main.commands["report"].params if p.name == "error_bars"]
    assert list(option.type.choices) == list(ERROR_BARS) and option.default == "std"
