"""``shrink report`` and ``shrink check``: from a sweep's MLflow runs to tables, figures,
report.md, artifacts and the checklist."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from shrink.experiment.tracking import resolve_tracking_uri
from shrink.report.aggregate import dense_controls, summarize
from shrink.report.analysis import Analysis, analyse
from shrink.report.bases import BASE, named_bases
from shrink.report.checklist import CheckItem, run_checklist
from shrink.report.files import write_parquet, write_text
from shrink.report.literature import load_literature
from shrink.report.markdown import render_report
from shrink.report.plots import ERROR_BARS, plot_sweep
from shrink.report.protocol import combine
from shrink.report.runs import Sweep, find_sweep, load_trials

REPORT_ROOT = Path("shrink-out") / "report"
ARTIFACT_PATH = "report"  # folder of the sweep's parent run that receives figures and report.md
# The tables logged with MlflowClient.log_table under ARTIFACT_PATH (the UI shows them as tables).
SUMMARY_TABLE = "summary.json"
COMPARISONS_TABLE = "comparisons.json"


@dataclass(frozen=True)
class Report:
    """What ``build_report`` wrote."""

    sweep: Sweep
    out_dir: Path
    files: list[Path]
    checks: list[CheckItem]


def _quiet(message: str) -> None:
    """The default progress sink: say nothing."""


@dataclass(frozen=True)
class Sources:
    """The sweeps a report reads: the first (``primary``, whose parent run receives the report) and the
    others combined with it (``shrink report A B``), with what the combination left out."""

    primary: Sweep
    others: tuple[Sweep, ...] = ()
    refused: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``A``, or ``A+B`` for a combined report: its folder's and its artifacts' name."""
        return "+".join(s.name for s in (self.primary, *self.others))

    @property
    def methods(self) -> tuple[str, ...] | None:
        """The proposed methods the sweeps recorded, together (None when none recorded any)."""
        recorded = [s.methods for s in (self.primary, *self.others) if s.methods is not None]
        return tuple(dict.fromkeys(m for methods in recorded for m in methods)) if recorded else None


def _read(sweep: Sweep, log) -> pd.DataFrame:
    log(f"sweep {sweep.name!r}: parent run {sweep.run_id} in {sweep.tracking_uri}")
    trials = load_trials(sweep, progress=lambda n: log(f"  read {n} trial runs"))
    counts = trials["status"].value_counts()
    log(f"{len(trials)} trials: {counts.get('finished', 0)} finished, "
        f"{counts.get('failed', 0)} failed, {counts.get('running', 0)} running")
    return trials


def _sources(name: str | None, also: tuple[str, ...], tracking_uri: str | None, log) -> tuple[Sources, pd.DataFrame]:
    """The sweeps named and their trials, combined (``shrink.report.protocol``) when there are several."""
    uri = resolve_tracking_uri(tracking_uri)
    sweeps = [find_sweep(uri, name), *(find_sweep(uri, other) for other in also)]
    if len(sweeps) == 1:
        return Sources(sweeps[0]), _read(sweeps[0], log)
    combined = combine([(sweep.name, _read(sweep, log)) for sweep in sweeps])
    for line in combined.refused:
        log(line)
    return Sources(sweeps[0], tuple(sweeps[1:]), combined.refused), combined.trials


def _write_tables(analysis: Analysis, out_dir: Path, log) -> list[Path]:
    tables = {"trials": analysis.trials, "summary": analysis.summary, "comparisons": analysis.comparisons,
              "curves": analysis.curves}
    if named_bases(analysis.trials):
        tables |= {"bases": analysis.base_variance, "base_verdicts": analysis.base_verdicts}
    files = [write_parquet(table, out_dir / f"{name}.parquet") for name, table in tables.items()]
    log(f"wrote {', '.join(f.name for f in files)} ({len(analysis.comparisons)} comparisons)")
    return files


def _literature(controls: pd.DataFrame, log) -> tuple[pd.DataFrame, list[str]]:
    """The survey's results and the swept ``dataset/model`` they cover."""
    papers = load_literature()
    ours = set(zip(controls["dataset"], controls["model"]))
    overlays = sorted(f"{d}/{m}" for d, m in ours & set(zip(papers["dataset"], papers["model"])))
    log(f"published results for: {', '.join(overlays) or 'none of the swept models'}")
    return papers, overlays


def build_report(name: str | None = None, *, also: tuple[str, ...] = (), tracking_uri: str | None = None,
                 out_dir: Path | None = None, literature: bool = False, error_bars: str = "std",
                 log=_quiet) -> Report:
    """Report on sweep ``name`` (default: the newest) of the store at ``tracking_uri``, combined with the
    sweeps ``also`` names where their protocol matches (``shrink.report.protocol``; the report's folder and
    artifacts are then named ``A+B``).

    Writes ``trials.parquet``, ``summary.parquet``, ``comparisons.parquet``, ``curves.parquet`` (with
    several named bases also ``bases.parquet`` and ``base_verdicts.parquet`` and one figure per base), one
    PNG and SVG figure per (dataset, model) with ``error_bars`` (``std`` or ``ci``, see
    :data:`~shrink.report.plots.ERROR_BARS`) and ``report.md`` into ``out_dir`` (default
    ``shrink-out/report/<sweep>``), every file atomically, and logs the figures, report.md and the
    summary and comparisons tables (``summary.json``, ``comparisons.json``: MLflow tables) to the sweep's
    parent run under ``report/``. ``log(message)`` hears progress.
    Raises :class:`~shrink.report.runs.SweepNotFound`.
    """
    if error_bars not in ERROR_BARS:
        raise ValueError(f"error_bars must be one of {', '.join(ERROR_BARS)}, got {error_bars!r}")
    sources, trials = _sources(name, tuple(also), tracking_uri, log)
    sweep = sources.primary
    out_dir = Path(out_dir or REPORT_ROOT / sources.label).resolve()
    analysis = analyse(trials, sources.methods)
    files = _write_tables(analysis, out_dir, log)
    papers, overlays = _literature(analysis.controls, log) if literature else (None, None)
    log(f"plotting {len(analysis.controls)} figure(s), one per (dataset, model)")
    figures = plot_sweep(analysis.summary, analysis.controls, out_dir, papers, error_bars)
    figures += _base_figures(analysis.trials, out_dir, error_bars)
    log(f"wrote {len(figures)} figure files")
    checks = run_checklist(analysis.trials, sources.methods, analysis.comparisons)
    markdown = render_report(sweep, analysis, checks, [f.relative_to(out_dir) for f in figures], overlays,
                             error_bars, sources.others, sources.refused)
    report = write_text(markdown, out_dir / "report.md")
    folder = ARTIFACT_PATH if not sources.others else f"{ARTIFACT_PATH}/{sources.label}"
    _log_artifacts(sweep, [*figures, report], analysis, folder)
    log(f"logged figures, report.md and the summary and comparisons tables to run {sweep.run_id} "
        f"under {folder}/")
    return Report(sweep, out_dir, [*files, *figures, report], checks)


def _base_figures(trials: pd.DataFrame, out_dir: Path, error_bars: str) -> list[Path]:
    """With several named bases, the figures of each base's trials alone (one curve per strategy and base)."""
    bases = named_bases(trials)
    if len(bases) < 2:
        return []
    figures = []
    for base in bases:
        own = trials[trials[BASE] == base]
        figures += plot_sweep(summarize(own), dense_controls(own), out_dir, None, error_bars, base)
    return figures


def _log_artifacts(sweep: Sweep, paths: list[Path], analysis: Analysis, folder: str) -> None:
    """The files, and the summary and comparisons tables as MLflow tables, under ``folder``."""
    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    for path in paths:
        client.log_artifact(sweep.run_id, str(path), artifact_path=folder)
    client.log_table(sweep.run_id, analysis.summary, f"{folder}/{SUMMARY_TABLE}")
    client.log_table(sweep.run_id, analysis.comparisons, f"{folder}/{COMPARISONS_TABLE}")


def check_sweep(name: str | None = None, *, also: tuple[str, ...] = (), tracking_uri: str | None = None,
                log=_quiet) -> tuple[Sweep, list[CheckItem]]:
    """Audit sweep ``name`` (default: the newest), combined with the sweeps ``also`` names as
    :func:`build_report` combines them, against the checklist; writes nothing."""
    sources, trials = _sources(name, tuple(also), tracking_uri, log)
    return sources.primary, run_checklist(trials, sources.methods)
