"""Results people can read: a sweep's MLflow runs as Parquet tables, tradeoff figures with error
bars, paired comparisons with corrected p-values, curve areas, a Markdown report, a literature
overlay and the paper's Appendix B checklist.

Reads MLflow only (never Ray or the orchestrator); the input is the trial-run schema of
docs/ARCHITECTURE.md.
"""

from shrink.report.aggregate import dense_controls, summarize
from shrink.report.analysis import Analysis, analyse
from shrink.report.build import Report, build_report, check_sweep
from shrink.report.checklist import CheckItem, format_checklist, run_checklist
from shrink.report.comparisons import compare, holm, seeds_needed
from shrink.report.control import FinetunedControl, finetuned_controls, with_control_deltas
from shrink.report.curves import curve_areas
from shrink.report.literature import clean_results, load_literature
from shrink.report.plots import plot_sweep, strategy_style
from shrink.report.runs import Sweep, SweepNotFound, find_sweep, list_sweeps, load_trials

__all__ = [
    "Analysis", "CheckItem", "FinetunedControl", "Report", "Sweep", "SweepNotFound", "analyse", "build_report",
    "check_sweep", "clean_results", "compare", "curve_areas", "dense_controls", "find_sweep", "finetuned_controls",
    "format_checklist", "holm", "list_sweeps", "load_literature", "load_trials", "plot_sweep", "run_checklist",
    "seeds_needed", "strategy_style", "summarize", "with_control_deltas",
]
