"""The curve as a whole: per strategy, the area under test top-1 against log2 compression.

One area per seed, over the same compressions and the same seeds for every strategy of a (dataset,
model), so a seed's areas are paired across strategies like its trials are; the spread of the areas
over seeds gives the interval. The compressions are those > 1 that every strategy reached (compression
1 is the fine-tuned control, the same for all), the seeds those (base and seed) with a finished trial
of every strategy at each of them.
"""

import numpy as np
import pandas as pd

from shrink.experiment.recording import Status
from shrink.report.intervals import describe

KEYS = ["dataset", "model", "strategy"]
SEED = ["base_sha256", "seed"]
COLUMNS = (*KEYS, "compression_low", "compression_high", "points", "seeds",
           "area_mean", "area_std", "area_stderr", "area_ci_low", "area_ci_high")


def _grid(curves: pd.DataFrame) -> pd.DataFrame:
    """The rows of one (dataset, model) on its common grid: compressions every strategy reached, seeds
    with every strategy at every one of them."""
    strategies = curves["strategy"].nunique()
    reached = curves.groupby("compression")["strategy"].nunique()
    curves = curves[curves["compression"].isin(reached.index[reached == strategies])]
    cells = curves.drop_duplicates(["strategy", "compression", *SEED]).groupby(SEED).size()
    complete = cells.index[cells == curves["compression"].nunique() * strategies]
    return curves[pd.MultiIndex.from_frame(curves[SEED]).isin(complete)]


def _areas(curves: pd.DataFrame) -> pd.Series:
    """One area per (strategy, seed) of one (dataset, model)'s grid: trapezoids of test top-1 over log2
    compression."""
    wide = curves.groupby([*KEYS, *SEED, "compression"])["test_top1"].mean().unstack("compression")
    area = np.trapezoid(wide.to_numpy(), np.log2(wide.columns.to_numpy(dtype=float)), axis=1)
    return pd.Series(area, index=wide.index, name="area")


def curve_areas(trials: pd.DataFrame) -> pd.DataFrame:
    """The areas table (see :data:`COLUMNS`): per (dataset, model, strategy), the grid's lowest and highest
    compression and its number of ``points``, the number of ``seeds``, and the mean, sample std, standard
    error and 95% t-interval of the per-seed areas (top-1 as a fraction times doublings of compression).
    A (dataset, model) with fewer than two common compressions has no rows."""
    pruned = (trials["status"] == Status.FINISHED) & (trials["compression"] > 1)
    finished = trials.loc[pruned, [*KEYS, *SEED, "compression", "test_top1"]].dropna(subset=["test_top1"])
    grids = [_grid(curves) for _, curves in finished.groupby(["dataset", "model"], sort=True)]
    grids = [g for g in grids if g["compression"].nunique() > 1]
    if not grids:
        return pd.DataFrame(columns=list(COLUMNS))
    grid = pd.concat(grids)
    areas = pd.concat([_areas(g) for g in grids]).reset_index()  # per grid: each has its own compressions
    head = grid.groupby(KEYS, sort=True).agg(compression_low=("compression", "min"),
                                             compression_high=("compression", "max"),
                                             points=("compression", "nunique"))
    head["seeds"] = areas.groupby(KEYS, sort=True).size()
    return head.join(describe(areas, KEYS, ["area"])).reset_index()[list(COLUMNS)]
