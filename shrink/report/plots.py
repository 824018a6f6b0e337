"""Tradeoff figures: test top-1 against compression ratio, theoretical speedup and measured speedup.

One figure per (dataset, model), PNG and SVG, drawn with matplotlib's object API (no pyplot,
no global backend switch). Error bars show the sample std over seeds (the default, as the paper asks)
or the 95% t-interval of the mean (``--error-bars ci``); the dense band the same over bases. The
measured-speedup panel is drawn only when some strategy's measured speedup differs from 1x beyond its
spread (:func:`measured_speedup_differs`): masked weights run on dense kernels, so for unstructured
pruning every point sits at about 1x and the panel would be a vertical pile. With published results, a
second row plots the change in top-1 from each dense baseline, where the papers' points sit beside
shrink's.
"""

import math
import re
import zlib
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

from shrink.atomic import atomic_path
from shrink.pruning.names import MatchedName

COMPRESSION_LABEL = "compression ratio (log2 scale)\n= original parameters / nonzero parameters"
SPEEDUP_LABEL = "theoretical speedup (log2 scale)\n= original multiply-adds / nonzero multiply-adds"
MEASURED_LABEL = "measured speedup (log2 scale)\n= dense / pruned forward time, batch 64"
TOP1_LABEL = "test top-1 accuracy (%)"
DELTA_LABEL = "change in test top-1 vs. dense (points)"
STYLES = {  # a fixed look per known strategy, the same in every figure whatever the order
    "global-magnitude": ("tab:blue", "o"),
    "layer-magnitude": ("tab:cyan", "s"),
    "global-gradient": ("tab:orange", "^"),
    "layer-gradient": ("tab:olive", "v"),
    "global-activation": ("tab:purple", "D"),
    "layer-activation": ("tab:pink", "P"),
    "random": ("tab:red", "X"),
    "layer-random": ("tab:brown", "*"),
}
OTHER_COLOURS = ("tab:green", "tab:gray", "darkgoldenrod", "teal", "indigo", "crimson", "olive")
OTHER_MARKERS = ("h", "p", "d", "<", ">", "8", "H")
MATCHED_STYLES = {"random-matched": ("x", ":"), "magnitude-matched": ("+", "--")}  # marker, line per family
# Smallest relative difference of forward times taken for a real one: the demo's masked models, timed on a
# busy 2-core machine, measured 0.85-1.30x with 3 seeds (differences up to 0.15 beyond twice their std).
TIMING_NOISE = 0.25
PAPER_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p", "d", "8")
ERROR_BARS = {"std": "sample std", "ci": "95% t-interval of the mean"}  # what the bars (and the band) can show


def strategy_style(strategy: str) -> dict:
    """Colour, marker and line style of a strategy: a fixed table for the built-in ones, a
    stable hash of the name for others; ``random-matched:<s>`` and ``magnitude-matched:<s>``
    take the colour of ``<s>`` with their own marker and a dashed or dotted line."""
    matched = MatchedName.parse(strategy)
    if matched is not None and matched.family in MATCHED_STYLES:
        marker, linestyle = MATCHED_STYLES[matched.family]
        return strategy_style(matched.reference) | {"marker": marker, "linestyle": linestyle}
    if strategy in STYLES:
        colour, marker = STYLES[strategy]
    else:
        h = zlib.crc32(strategy.encode())
        colour, marker = OTHER_COLOURS[h % len(OTHER_COLOURS)], OTHER_MARKERS[h // 7 % len(OTHER_MARKERS)]
    return {"color": colour, "marker": marker, "linestyle": "-"}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _log2_axis(ax, values) -> None:
    """log2 x axis with ticks at powers of two: 1 to 32, extended to cover the data."""
    values = [v for v in values if v > 0 and math.isfinite(v)]
    low = min([0, *(math.floor(math.log2(v)) for v in values)])
    high = max([5, *(math.ceil(math.log2(v)) for v in values)])
    ticks = [2.0**k for k in range(low, high + 1)]
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(ticks[0] / 2**0.3, ticks[-1] * 2**0.3)
    ax.grid(True, alpha=0.3)


def _spread(rows, y: str, error_bars: str) -> tuple:
    """(below, above) the mean of ``y``: the sample std, or the distance to each end of the 95% t-interval;
    0 where undefined (one seed)."""
    if error_bars == "std":
        std = rows[f"{y}_std"]
        return std, std
    mean = rows[f"{y}_mean"]
    return mean - rows[f"{y}_ci_low"], rows[f"{y}_ci_high"] - mean


def _dense_band(ax, centre: float, below: float, above: float) -> None:
    below, above = (0.0 if math.isnan(v) else v for v in (below, above))
    ax.axhspan(centre - below, centre + above, color="0.85", zorder=0)
    ax.axhline(centre, color="0.45", linestyle="--", linewidth=1, zorder=1)


def _curves(ax, points: pd.DataFrame, x: str, y: str, error_bars: str) -> None:
    """One line per strategy: mean of ``y`` with ``error_bars`` (see :data:`ERROR_BARS`), in percent."""
    for strategy, curve in points.groupby("strategy", sort=True):
        curve = curve.dropna(subset=[x, f"{y}_mean"]).sort_values(x)
        below, above = _spread(curve, y, error_bars)
        ax.errorbar(
            curve[x], 100 * curve[f"{y}_mean"], yerr=[100 * below.fillna(0), 100 * above.fillna(0)],
            capsize=3, markersize=6, linewidth=1.5, **strategy_style(strategy),
        )


def _band_label(control: pd.Series, error_bars: str) -> str:
    """The dense control's legend entry: mean ± std, or mean and 95% t-interval, over its bases."""
    mean, bases = 100 * control["dense_test_top1_mean"], _count(int(control["bases"]), "base")
    if error_bars == "std":
        std = 100 * control["dense_test_top1_std"]
        return f"dense control: {mean:.2f}{'' if math.isnan(std) else f' ± {std:.2f}'} % (over {bases})"
    low, high = 100 * control["dense_test_top1_ci_low"], 100 * control["dense_test_top1_ci_high"]
    interval = "" if math.isnan(low) else f", 95% CI {low:.2f}-{high:.2f}"
    return f"dense control: {mean:.2f} % (over {bases}{interval})"


def _paper_legend(papers: pd.DataFrame) -> dict[str, Line2D]:
    """A fixed look per paper (by name order), labelled with the paper's own dense baseline."""
    handles = {}
    for i, (paper, rows) in enumerate(papers.groupby("paper", sort=True)):
        bases = sorted(rows["orig_top1"].dropna().unique())
        base = (f"{100 * bases[0]:.2f}%" if len(bases) == 1 else
                f"{100 * bases[0]:.2f}-{100 * bases[-1]:.2f}%" if bases else "not reported")
        handles[paper] = Line2D(
            [], [], linestyle="none", marker=PAPER_MARKERS[i % len(PAPER_MARKERS)],
            markerfacecolor="none", markeredgecolor=matplotlib.colormaps["tab20b"](i % 20),
            label=f"{paper} (dense {base})",
        )
    return handles


def _papers(ax, papers: pd.DataFrame, x: str, legend: dict[str, Line2D]) -> None:
    """Published points: change in top-1 from each paper's own baseline, in points."""
    for paper, rows in papers.dropna(subset=[x]).groupby("paper", sort=True):
        style = legend[paper]
        ax.scatter(rows[x], 100 * rows["delta_top1"], marker=style.get_marker(), s=40,
                   facecolors="none", edgecolors=[style.get_markeredgecolor()], linewidths=1.2,
                   zorder=3)


def measured_speedup_differs(points: pd.DataFrame) -> bool:
    """Whether some point of ``points`` (summary rows) has a mean measured speedup that differs from 1
    by more than its spread: twice its sample std over seeds, and at least :data:`TIMING_NOISE`.
    Points without a measured speedup do not count."""
    mean = points["measured_speedup_mean"]
    spread = (2 * points["measured_speedup_std"].fillna(0)).clip(lower=TIMING_NOISE)
    return bool(((mean - 1).abs() > spread).any())


def plot_figure(points: pd.DataFrame, control: pd.Series, papers: pd.DataFrame | None = None,
                error_bars: str = "std", base: str = "") -> Figure:
    """The figure of one (dataset, model): ``points`` are its summary rows, ``control`` its row
    of :func:`~shrink.report.aggregate.dense_controls`, ``papers`` its published results, ``error_bars``
    a key of :data:`ERROR_BARS` (for the points and the dense band alike), ``base`` the name of the base
    setting the points are of (empty: all the trials). Panels: top-1 against
    compression and theoretical speedup, and against measured speedup when
    :func:`measured_speedup_differs`."""
    rows = 1 if papers is None or papers.empty else 2
    panels = [("compression_ratio_mean", COMPRESSION_LABEL), ("theoretical_speedup_mean", SPEEDUP_LABEL)]
    if measured_speedup_differs(points):
        panels.append(("measured_speedup_mean", MEASURED_LABEL))
    fig = Figure(figsize=(5.4 * len(panels) + 2.8, 4.6 * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, len(panels), squeeze=False)
    if rows == 2 and len(panels) == 3:
        fig.delaxes(axes[1][2])  # papers report no measured speedups
    dense = 100 * control["dense_test_top1_mean"]
    below, above = (100 * v for v in _spread(control, "dense_test_top1", error_bars))
    for ax, (x, label) in zip(axes[0], panels):
        _dense_band(ax, dense, below, above)
        _curves(ax, points, x, "test_top1", error_bars)
        _log2_axis(ax, points[x])
        ax.set_xlabel(label)
        ax.set_ylabel(TOP1_LABEL)
    handles = [
        Line2D([], [], label=s, **strategy_style(s)) for s in sorted(points["strategy"].unique())
    ] + [Patch(color="0.85", label=_band_label(control, error_bars))]
    if rows == 2:
        legend = _paper_legend(papers)
        for ax, x, ours, label in zip(axes[1], ("compression", "speedup"),
                                      ("compression_ratio_mean", "theoretical_speedup_mean"),
                                      (COMPRESSION_LABEL, SPEEDUP_LABEL)):
            _dense_band(ax, 0.0, below, above)
            _curves(ax, points, ours, "delta_top1", error_bars)
            _papers(ax, papers, x, legend)
            _log2_axis(ax, [*points[ours], *papers[x]])
            ax.set_xlabel(label)
            ax.set_ylabel(DELTA_LABEL)
        fig.legend(handles=list(legend.values()), loc="outside right lower", fontsize="small",
                   title="published: own baseline, own FLOP count")
    fig.legend(handles=handles, loc="outside right upper", title="strategy")
    shown = "mean ± sample std" if error_bars == "std" else "mean and 95% t-interval of the mean"
    fig.suptitle(f"{control['dataset']} / {control['model']}{f' on base {base}' if base else ''}: {shown} over seeds "
                 f"({int(control['count'])} finished trials)")
    return fig


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.svg atomically and reproducibly (no dates, fixed SVG ids)."""
    paths = []
    with matplotlib.rc_context({"svg.hashsalt": "shrink"}):
        for fmt, metadata in (("png", None), ("svg", {"Date": None})):
            path = stem.with_suffix(f".{fmt}")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=120, metadata=metadata)
            paths.append(path)
    return paths


def plot_sweep(summary: pd.DataFrame, controls: pd.DataFrame, out_dir: Path,
               literature: pd.DataFrame | None = None, error_bars: str = "std", base: str = "") -> list[Path]:
    """Draw and save one figure per (dataset, model) of ``controls`` with ``error_bars`` (see
    :data:`ERROR_BARS`); returns the files written (``<dataset>_<model>.png`` and ``.svg`` for each,
    ``<dataset>_<model>_base-<base>`` for the trials of one named ``base``)."""
    paths = []
    for _, control in controls.iterrows():
        key = (control["dataset"], control["model"])
        points = summary[(summary["dataset"] == key[0]) & (summary["model"] == key[1])]
        papers = None
        if literature is not None:
            papers = literature[(literature["dataset"] == key[0]) & (literature["model"] == key[1])]
        fig = plot_figure(points, control, papers, error_bars, base)
        suffix = f"_base-{_slug(base)}" if base else ""
        paths += save_figure(fig, Path(out_dir) / f"{_slug(key[0])}_{_slug(key[1])}{suffix}")
    return paths
