"""``shrink report`` and ``shrink check``: from a sweep's MLflow runs to tables, figures,
report.md, artifacts and the checklist."""

from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient

from shrink.experiment.tracking import resolve_tracking_uri
from shrink.report.aggregate import dense_controls, summarize
from shrink.report.checklist import CheckItem, run_checklist
from shrink.report.files import write_parquet, write_text
from shrink.report.literature import load_literature
from shrink.report.markdown import render_report
from shrink.report.plots import plot_sweep
from shrink.report.runs import Sweep, find_sweep, load_trials

REPORT_ROOT = Path("shrink-out") / "report"
ARTIFACT_PATH = "report"  # folder of the sweep's parent run that receives figures and report.md
SUMMARY_TABLE = "summary.json"  # the summary table, logged with MlflowClient.log_table under ARTIFACT_PATH


@dataclass(frozen=True)
class Report:
    """What ``build_report`` wrote."""

    sweep: Sweep
    out_dir: Path
    files: list[Path]
    checks: list[CheckItem]


def _quiet(message: str) -> None:
    """The default progress sink: say nothing."""


def build_report(name: str | None = None, *, tracking_uri: str | None = None,
                 out_dir: Path | None = None, literature: bool = False, log=_quiet) -> Report:
    """Report on sweep ``name`` (default: the newest) of the store at ``tracking_uri``.

    Writes ``trials.parquet``, ``summary.parquet``, one PNG and SVG figure per (dataset, model)
    and ``report.md`` into ``out_dir`` (default ``shrink-out/report/<sweep>``), every file
    atomically, and logs the figures, report.md and the summary table (``summary.json``, an MLflow
    table) to the sweep's parent run under ``report/``.
    ``log(message)`` hears progress. Raises :class:`~shrink.report.runs.SweepNotFound`.
    """
    sweep = find_sweep(resolve_tracking_uri(tracking_uri), name)
    out_dir = Path(out_dir or REPORT_ROOT / sweep.name).resolve()
    log(f"sweep {sweep.name!r}: parent run {sweep.run_id} in {sweep.tracking_uri}")
    trials = load_trials(sweep, progress=lambda n: log(f"  read {n} trial runs"))
    counts = trials["status"].value_counts()
    log(f"{len(trials)} trials: {counts.get('finished', 0)} finished, "
        f"{counts.get('failed', 0)} failed, {counts.get('running', 0)} running")
    summary, controls = summarize(trials), dense_controls(trials)
    files = [write_parquet(trials, out_dir / "trials.parquet"),
             write_parquet(summary, out_dir / "summary.parquet")]
    log(f"wrote {', '.join(f.name for f in files)}")
    papers, overlays = None, None
    if literature:
        papers = load_literature()
        ours = set(zip(controls["dataset"], controls["model"]))
        overlays = sorted(f"{d}/{m}" for d, m in ours & set(zip(papers["dataset"], papers["model"])))
        log(f"published results for: {', '.join(overlays) or 'none of the swept models'}")
    log(f"plotting {len(controls)} figure(s), one per (dataset, model)")
    figures = plot_sweep(summary, controls, out_dir, papers)
    log(f"wrote {len(figures)} figure files")
    checks = run_checklist(trials, sweep.methods)
    markdown = render_report(sweep, trials, summary, controls, checks,
                             [f.relative_to(out_dir) for f in figures], overlays)
    report = write_text(markdown, out_dir / "report.md")
    _log_artifacts(sweep, [*figures, report], summary)
    log(f"logged figures, report.md and the summary table to run {sweep.run_id} under {ARTIFACT_PATH}/")
    return Report(sweep, out_dir, [*files, *figures, report], checks)


def _log_artifacts(sweep: Sweep, paths: list[Path], summary) -> None:
    """The files, and the summary table as an MLflow table (the UI shows it as a table)."""
    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    for path in paths:
        client.log_artifact(sweep.run_id, str(path), artifact_path=ARTIFACT_PATH)
    client.log_table(sweep.run_id, summary, f"{ARTIFACT_PATH}/{SUMMARY_TABLE}")


def check_sweep(name: str | None = None, *, tracking_uri: str | None = None,
                log=_quiet) -> tuple[Sweep, list[CheckItem]]:
    """Audit sweep ``name`` (default: the newest) against the checklist; writes nothing."""
    sweep = find_sweep(resolve_tracking_uri(tracking_uri), name)
    log(f"sweep {sweep.name!r}: parent run {sweep.run_id} in {sweep.tracking_uri}")
    trials = load_trials(sweep, progress=lambda n: log(f"  read {n} trial runs"))
    return sweep, run_checklist(trials, sweep.methods)
