"""report.md: the setup, the summary table, the fine-tuned control, the comparisons, the curve areas, the
figures and the checklist of one sweep."""

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from shrink.experiment.recording import Status
from shrink.experiment.sources import PRETRAIN
from shrink.report.analysis import Analysis
from shrink.report.checklist import CheckItem
from shrink.report.comparisons import ALPHA, where
from shrink.report.control import FinetunedControl
from shrink.report.plots import ERROR_BARS, TIMING_NOISE, measured_speedup_differs
from shrink.report.runs import Sweep

BOOKKEEPING = {"params.base_sha256", "params.experiment_name", "params.parent_run_id",
               "params.sweep", "params.tracking_uri"}  # shown elsewhere or store-specific


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _pm(mean: float, std: float, scale: float = 1.0, digits: int = 2) -> str:
    """``mean ± std`` (std omitted when undefined, n/a when there is no mean)."""
    if math.isnan(mean):
        return "n/a"
    text = f"{scale * mean:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {scale * std:.{digits}f}"


def _values(series: pd.Series) -> str:
    values = sorted(str(v) for v in series.dropna().unique())
    return ", ".join(values) if values else "not recorded"


def _settings(trials: pd.DataFrame, columns: list[str]) -> str:
    if not columns:
        return "not recorded"
    return _table(["setting", "value"], [[c.removeprefix("params."), _values(trials[c])] for c in columns])


def _setup(trials: pd.DataFrame, controls: pd.DataFrame) -> str:
    finished = trials[trials["status"] == Status.FINISHED]
    rows = []
    for _, c in controls.iterrows():
        pair = finished[(finished["dataset"] == c["dataset"]) & (finished["model"] == c["model"])]
        rows.append([
            c["dataset"], c["model"], int(c["count"]),
            " ".join(f"`{h}`" for h in sorted(pair["base_sha256"].dropna().unique())) or "not recorded",
            _values(pair["base_source"].fillna(PRETRAIN)),
            _values(pair["split_hash"]),
            _pm(c["dense_test_top1_mean"], c["dense_test_top1_std"], 100),
            _pm(c["dense_test_top5_mean"], c["dense_test_top5_std"], 100),
        ])
    models = _table(["dataset", "model", "finished trials", "base checkpoint (sha256)", "base source",
                     "split hash", "dense test top-1 (%)", "dense test top-5 (%)"], rows)
    sources = finished["base_source"].fillna(PRETRAIN)
    elsewhere = sorted(sources[sources != PRETRAIN].unique())
    if elsewhere:
        models += (f"\n\nThe validation carve-out was part of the training data of base {', '.join(elsewhere)}: "
                   "it was trained elsewhere (as in the paper's ImageNet setup), so validation scores, and early "
                   "stopping on them, are optimistic; test scores are not affected.")
    params = [c for c in trials.columns if c.startswith("params.") and c not in BOOKKEEPING]
    recipe = [c for c in params if c.startswith("params.finetune.")]
    other = [c for c in params if c not in recipe]
    versions = {}
    for text in finished["versions"].dropna().unique():
        for library, version in json.loads(text).items():
            versions.setdefault(library, set()).add(str(version))
    return "\n\n".join([
        "## Setup",
        models,
        "Fine-tuning recipe (every value used in the sweep):",
        _settings(trials, recipe),
        "Other trial settings:",
        _settings(trials, other),
        "Library versions:",
        _table(["library", "version"], [[k, ", ".join(sorted(v))] for k, v in sorted(versions.items())]),
        f"Hardware: {_values(finished['hardware'])} (device: {_values(finished['device'])}; "
        f"autocast: {_values(finished['amp'])}; channels_last: {_values(finished['channels_last'])}). "
        f"shrink git commit: {_values(finished['git_commit'])}.",
    ])


def _results(summary: pd.DataFrame) -> str:
    rows = [[
        r["dataset"], r["model"], r["strategy"], f"{r['compression']:g}", r["count"], r["failed"],
        _pm(r["test_top1_mean"], r["test_top1_std"], 100),
        _pm(r["test_top5_mean"], r["test_top5_std"], 100),
        _pm(r["delta_top1_mean"], r["delta_top1_std"], 100),
        _pm(r["delta_top1_vs_control_mean"], r["delta_top1_vs_control_std"], 100),
        _pm(r["compression_ratio_mean"], r["compression_ratio_std"]),
        _pm(r["theoretical_speedup_mean"], r["theoretical_speedup_std"]),
        _pm(r["epochs_run_mean"], r["epochs_run_std"], digits=1),
        _pm(r["wall_time_s_mean"], r["wall_time_s_std"], digits=1),
        "yes" if r["pareto"] else "",
    ] for _, r in summary.iterrows()]
    return "\n\n".join([
        "## Results",
        "Mean ± sample standard deviation (ddof=1) over seeds of the finished trials; `n` counts "
        "them, `failed` counts failed trials (never averaged). Standard errors and 95% t-intervals of "
        "each mean are in `summary.parquet`. Compression = original parameters / nonzero parameters; "
        "speedup = original multiply-adds / nonzero multiply-adds; Δ top-1 = pruned minus dense (the base "
        "before fine-tuning), in points; Δ vs control = pruned minus the fine-tuned control (the "
        "compression-1 trial of the same base and seed), in points. Pareto: no other strategy's point has "
        "both a higher mean achieved compression and a higher mean top-1 (means only: the comparisons "
        "below say which differences are beyond seed noise).",
        _table(["dataset", "model", "strategy", "compression", "n", "failed", "top-1 (%)",
                "top-5 (%)", "Δ top-1", "Δ vs control", "achieved compression", "theoretical speedup",
                "epochs", "wall time (s)", "Pareto"], rows),
    ])


def _finetuned(controls: pd.DataFrame, finetuned: tuple[FinetunedControl, ...]) -> str:
    """One sentence per (dataset, model): does the fine-tuned control beat its base beyond its interval?"""
    found = {(c.dataset, c.model): c for c in finetuned}
    sentences = []
    for key in zip(controls["dataset"], controls["model"]):
        label, control = "/".join(key), found.get(key)
        if control is None:
            sentences.append(f"{label}: no compression-1 trials, so no fine-tuned control: Δ top-1 against the "
                             "base also counts the fine-tuning's extra training; add compression 1 to the grid.")
        elif control.converged is None:
            sentences.append(f"{label}: the fine-tuned control gains {control.described()} over the base; one "
                             "pair gives no interval.")
        elif control.converged:
            sentences.append(f"{label}: the fine-tuned control gains {control.described()} over the base, "
                             "within its interval: the base has converged under this recipe.")
        else:
            sentences.append(f"{label}: base not converged: the fine-tuned control beats it by "
                             f"{control.described()}, so Δ top-1 against the base credits pruned points with "
                             "the extra training; read Δ vs control.")
    return "\n\n".join(["## Fine-tuned control", *sentences])


def _points(value: float, sign: bool = True) -> str:
    return "" if math.isnan(value) else f"{100 * value:{'+' if sign else ''}.2f}"


def _interval(low: float, high: float, sign: bool = True) -> str:
    return "" if math.isnan(low) else f"{_points(low, sign)} to {_points(high, sign)}"


def _p(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3g}"


def _comparison_rows(comparisons: pd.DataFrame) -> list[list]:
    return [[
        r.dataset, r.model, r.metric, f"{r.compression:g}", r.method, r.baseline, r.test, r.n,
        _points(r.mean_diff), _interval(r.ci_low, r.ci_high),
        _p(r.p_value), _p(r.p_holm), r.verdict, "" if pd.isna(r.seeds_needed) else r.seeds_needed,
    ] for r in comparisons.itertuples()]


def _method_sentences(comparisons: pd.DataFrame) -> list[str]:
    """One sentence per (dataset, model, method) on test top-1: where it is better, worse, indistinguishable."""
    phrases = {"better": "better than", "worse": "worse than", "indistinguishable": "indistinguishable from",
               "untested": "untested against"}
    top1 = comparisons[comparisons["metric"] == "test_top1"]
    sentences = []
    for (dataset, model, method), rows in top1.groupby(["dataset", "model", "method"], sort=True):
        parts = [f"{phrase} {where(rows[rows['verdict'] == verdict])}"
                 for verdict, phrase in phrases.items() if (rows["verdict"] == verdict).any()]
        sentences.append(f"`{method}` on {dataset}/{model} (test top-1): {'; '.join(parts)}.")
    return sentences


def _comparisons(comparisons: pd.DataFrame) -> str:
    intro = (f"Each method minus each baseline at the same compression, over pairs of trials with the same base "
             f"and seed (same pruning batch, same data order): mean difference and 95% t-interval in points, "
             f"two-sided paired t-test (Welch's unpaired test where some trial has no partner, said in `test`), "
             f"p-values corrected by Holm-Bonferroni over the rows of one dataset, model and metric; `better` "
             f"and `worse` need p (Holm) < {ALPHA:g}; `untested`: fewer than two pairs, or every difference equal. "
             f"Seeds needed: per arm, for 80% power at {ALPHA:g} to detect the observed difference given the "
             f"observed spread of the differences. Also in `comparisons.parquet`.")
    if comparisons.empty:
        return ("## Comparisons\n\nNo comparisons: no compression > 1 has a method and a baseline (or, where the sweep "
                "names no methods, two strategies).")
    table = _table(["dataset", "model", "metric", "compression", "method", "baseline", "test", "n",
                    "Δ (points)", "95% CI (points)", "p", "p (Holm)", "verdict", "seeds needed"],
                   _comparison_rows(comparisons))
    return "\n\n".join(["## Comparisons", intro, table, *_method_sentences(comparisons)])


def _combined(others: tuple[Sweep, ...], refused: tuple[str, ...]) -> list[str]:
    """For a report of several sweeps: which, and what their protocols let in."""
    if not others:
        return []
    lines = [f"Combined with sweep{'s' if len(others) > 1 else ''} "
             + ", ".join(f"`{s.name}` (parent run `{s.run_id}`)" for s in others)
             + ": their trials count where their protocol (carve-out, bases, fine-tuning recipe and variant, "
               "schedule, pruning batch, shrink version) is the first sweep's; every cell counts once."]
    lines += [f"- left out: {line}" for line in refused] or ["- nothing left out"]
    return ["\n".join(lines)]


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def _bases(analysis: Analysis) -> list[str]:
    """The base as a factor: each cell's variance between and within bases, and the comparisons whose verdict
    differs from one base to another (nothing for a sweep with one base)."""
    variance, verdicts = analysis.base_variance, analysis.base_verdicts
    if variance.empty and verdicts.empty:
        return []
    parts = ["## Bases", "Test top-1 of each cell split into the variance between the sweep's named bases and "
             "within one (one-way random effects, method of moments; F test that the bases' means are equal), "
             "in points squared. Also in `bases.parquet`; the figures `*_base-<name>` show each base alone."]
    parts.append(_table(
        ["dataset", "model", "strategy", "compression", "bases", "trials", "between", "within", "between share", "p"],
        [[r["dataset"], r["model"], r["strategy"], f"{r['compression']:g}", r["bases"], r["n"],
          _number(1e4 * r["between_var"]), _number(1e4 * r["within_var"]), _number(r["between_share"]),
          _p(r["p_value"])]
         for _, r in variance.iterrows()]))
    differ = verdicts[~verdicts["agree"]]
    if verdicts.empty:
        parts.append("No comparison is made on two bases.")
    elif differ.empty:
        parts.append(f"Every one of the {len(verdicts)} comparisons made on each base alone has the same verdict "
                     "on every base.")
    else:
        parts += [f"{len(differ)} of the {len(verdicts)} comparisons made on each base alone change their verdict "
                  "with the base (`base_verdicts.parquet`): a claim resting on one base would not hold on another.",
                  _table(["dataset", "model", "metric", "compression", "method", "baseline", "verdict by base"],
                         [[r["dataset"], r["model"], r["metric"], f"{r['compression']:g}", r["method"],
                           r["baseline"], r["verdicts"]] for _, r in differ.iterrows()])]
    return ["\n\n".join(parts)]


def _curves(curves: pd.DataFrame) -> str:
    intro = ("Area under test top-1 (%) against log2 compression (each doubling counts 1), one area per seed "
             "over the compressions > 1 that every strategy of the dataset and model reached and the seeds "
             "with a finished trial of every strategy at each of them; mean ± sample std and 95% t-interval "
             "over seeds. Also in `curves.parquet`.")
    if curves.empty:
        return "## Curves\n\nNo curve areas: fewer than two compressions > 1 common to every strategy."
    rows = [[r.dataset, r.model, r.strategy, f"{r.compression_low:g}-{r.compression_high:g}x ({r.points} points)",
             r.seeds, _pm(r.area_mean, r.area_std, 100), _interval(r.area_ci_low, r.area_ci_high, sign=False)]
            for r in curves.itertuples()]
    return "\n\n".join(["## Curves", intro, _table(
        ["dataset", "model", "strategy", "compressions", "seeds", "area", "95% CI"], rows)])


def _methods(sweep: Sweep) -> str:
    """Which strategies the sweep proposes; the others are baselines."""
    if sweep.methods is None:
        return ("Proposed methods: not recorded by the sweep; the checklist takes every strategy that is not a "
                "built-in baseline.")
    if not sweep.methods:
        return "Proposed methods: none; every strategy is a baseline."
    return (f"Proposed methods: {', '.join(f'`{m}`' for m in sweep.methods)}; the other strategies are "
            "baselines.")


def _measured_omitted(summary: pd.DataFrame, controls: pd.DataFrame) -> list[str]:
    """One sentence per figure drawn without its measured-speedup panel, saying why."""
    sentences = []
    for _, c in controls.iterrows():
        points = summary[(summary["dataset"] == c["dataset"]) & (summary["model"] == c["model"])]
        if measured_speedup_differs(points):
            continue
        if points["measured_speedup_mean"].isna().all():
            why = "no trial recorded a measured speedup"
        else:
            why = (f"every strategy's mean measured speedup is 1x within its spread (twice the sample std "
                   f"over seeds, at least ±{TIMING_NOISE:.0%} for timing noise), as expected of masked weights, "
                   f"which run on dense kernels")
        sentences.append(f"{c['dataset']}/{c['model']}: top-1 against measured speedup is not plotted: {why}.")
    return sentences


def _figures(analysis: Analysis, figures: list[Path], overlays: list[str] | None, error_bars: str) -> list[str]:
    parts = [
        "## Figures",
        f"Error bars: {ERROR_BARS[error_bars]} over seeds. Grey band: the dense control, mean ± "
        f"{ERROR_BARS[error_bars]} of the dense test top-1 over the distinct base checkpoints (one value per "
        "base, however many of its trials finished).",
        *_measured_omitted(analysis.summary, analysis.controls),
    ]
    if overlays:
        parts.append(
            f"Published results (Blalock et al. 2020 survey data, from ShrinkBench, MIT license) "
            f"for {', '.join(overlays)} appear in a second row as the change in top-1 from each "
            f"paper's own dense baseline (named in the legend); their speedups use each paper's "
            f"own FLOP count."
        )
    elif overlays is not None:
        parts.append("The survey data (Blalock et al. 2020) has no published results for these "
                     "datasets and models.")
    return parts + [f"![{f.stem}]({f.as_posix()})" for f in figures if f.suffix == ".png"]


def render_report(sweep: Sweep, analysis: Analysis, checks: list[CheckItem], figures: list[Path],
                  overlays: list[str] | None = None, error_bars: str = "std", others: tuple[Sweep, ...] = (),
                  refused: tuple[str, ...] = ()) -> str:
    """The Markdown report; ``figures`` are paths relative to the report's directory, ``overlays`` the
    ``dataset/model`` figures with published results (None: not asked for), ``error_bars`` what the
    figures draw (a key of :data:`~shrink.report.plots.ERROR_BARS`), ``others`` the sweeps combined with
    ``sweep`` and ``refused`` what the combination left out (``shrink.report.protocol``)."""
    trials = analysis.trials
    counts = trials["status"].value_counts()
    parts = [
        f"# Pruning report: sweep `{sweep.name}`",
        f"MLflow parent run `{sweep.run_id}` (experiment {sweep.experiment_id}, started "
        f"{datetime.fromtimestamp(sweep.start_time / 1000, timezone.utc):%Y-%m-%d %H:%M:%S} UTC) in "
        f"`{sweep.tracking_uri}`: {len(trials)} trials, {counts.get('finished', 0)} finished, "
        f"{counts.get('failed', 0)} failed, {counts.get('running', 0)} running.",
        *_combined(others, refused),
        _methods(sweep),
        _setup(trials, analysis.controls),
        _results(analysis.summary),
        _finetuned(analysis.controls, analysis.finetuned),
        _comparisons(analysis.comparisons),
        _curves(analysis.curves),
        *_bases(analysis),
        *_figures(analysis, figures, overlays, error_bars),
        "## Checklist (Blalock et al. 2020, Appendix B)",
        _table(["item", "result", "why"], [[i.name, "PASS" if i.passed else "FAIL", i.reason] for i in checks]),
    ]
    failed = trials[trials["status"] == Status.FAILED]
    if len(failed):
        parts += ["## Failed trials", _table(
            ["run", "dataset", "model", "strategy", "compression", "seed", "reason"],
            [[r["run_id"], r["dataset"], r["model"], r["strategy"], f"{r['compression']:g}",
              r["seed"], r["failure"]] for _, r in failed.iterrows()],
        )]
    return "\n\n".join(parts) + "\n"
