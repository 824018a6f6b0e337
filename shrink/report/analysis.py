"""Every table of one report, computed once from the per-trial table."""

from dataclasses import dataclass

import pandas as pd

from shrink.report.aggregate import dense_controls, summarize
from shrink.report.bases import variance_by_base, verdicts_by_base
from shrink.report.comparisons import compare
from shrink.report.control import FinetunedControl, finetuned_controls
from shrink.report.curves import curve_areas


@dataclass(frozen=True, eq=False)
class Analysis:
    """The per-trial table and what the report derives from it (each function's docstring gives the columns)."""

    trials: pd.DataFrame  # shrink.report.runs.trials_frame
    summary: pd.DataFrame  # aggregate.summarize
    controls: pd.DataFrame  # aggregate.dense_controls
    comparisons: pd.DataFrame  # comparisons.compare
    curves: pd.DataFrame  # curves.curve_areas
    finetuned: tuple[FinetunedControl, ...]  # control.finetuned_controls
    base_variance: pd.DataFrame  # bases.variance_by_base (empty with one base)
    base_verdicts: pd.DataFrame  # bases.verdicts_by_base (empty with one base)


def analyse(trials: pd.DataFrame, methods: tuple[str, ...] | None) -> Analysis:
    """The tables of ``trials``; ``methods`` are the sweep's proposed methods (see ``compare``)."""
    return Analysis(trials, summarize(trials), dense_controls(trials), compare(trials, methods),
                    curve_areas(trials), tuple(finetuned_controls(trials)), variance_by_base(trials),
                    verdicts_by_base(trials, methods))
