"""Results people can read: a sweep's MLflow runs as Parquet tables, tradeoff figures with error
bars, a Markdown report, a literature overlay and the paper's Appendix B checklist.

Reads MLflow only (never Ray or the orchestrator); the input is the trial-run schema of
docs/ARCHITECTURE.md.
"""

from shrink.report.aggregate import dense_controls, summarize
from shrink.report.build import Report, build_report, check_sweep
from shrink.report.checklist import CheckItem, format_checklist, run_checklist
from shrink.report.literature import clean_results, load_literature
from shrink.report.plots import plot_sweep, strategy_style
from shrink.report.runs import Sweep, SweepNotFound, find_sweep, list_sweeps, load_trials

__all__ = [
    "CheckItem", "Report", "Sweep", "SweepNotFound", "build_report", "check_sweep",
    "clean_results", "dense_controls", "find_sweep", "format_checklist", "list_sweeps",
    "load_literature", "load_trials", "plot_sweep", "run_checklist", "strategy_style", "summarize",
]
