"""Areas under the curve: trapezoids over log2 compression by hand, t-intervals from scipy."""

import numpy as np
import pytest
from report_sweeps import table, trial
from scipy import stats

from shrink.report.curves import COLUMNS, curve_areas

# Test top-1 per (strategy, compression) over seeds 0, 1, 2.
TOP1 = {
    ("global-magnitude", 2): (0.96, 0.95, 0.97), ("global-magnitude", 4): (0.92, 0.90, 0.93),
    ("global-magnitude", 8): (0.80, 0.82, 0.84),
    ("random", 2): (0.90, 0.88, 0.91), ("random", 4): (0.70, 0.72, 0.69), ("random", 8): (0.40, 0.45, 0.50),
}


def trials(extra=()):
    return table([trial(s, c, seed, v) for (s, c), values in TOP1.items() for seed, v in enumerate(values)]
                 + [trial("random", 1, seed, 0.98) for seed in range(3)] + list(extra))


def area(strategy: str, seed: int) -> float:
    """Trapezoids at log2 compression 1, 2, 3: half the ends plus the middle."""
    y2, y4, y8 = (TOP1[strategy, c][seed] for c in (2, 4, 8))
    return (y2 + y4) / 2 + (y4 + y8) / 2


def test_one_area_per_seed_with_a_t_interval_over_seeds():
    table_ = curve_areas(trials()).set_index("strategy")
    assert list(curve_areas(trials()).columns) == list(COLUMNS)
    for strategy in ("global-magnitude", "random"):
        areas = [area(strategy, seed) for seed in range(3)]
        expected = stats.ttest_1samp(areas, 0).confidence_interval(0.95)
        row = table_.loc[strategy]
        assert (row["compression_low"], row["compression_high"], row["points"], row["seeds"]) == (2, 8, 3, 3)
        assert row["area_mean"] == pytest.approx(np.mean(areas), abs=1e-12)
        assert row["area_std"] == pytest.approx(np.std(areas, ddof=1), abs=1e-12)
        assert (row["area_ci_low"], row["area_ci_high"]) == pytest.approx((expected.low, expected.high), rel=1e-12)
    # The compression-1 trials (the control, random's only) are not part of the curve.
    assert table_.loc["random", "area_mean"] == pytest.approx(np.mean([area("random", s) for s in range(3)]))


def test_the_grid_is_what_every_strategy_reached_and_the_seeds_those_complete_for_all():
    # random alone reached 16x, and global-magnitude's seed 2 is missing at 8x: the areas span 2-8x over
    # seeds 0 and 1 only, for both strategies (so they stay paired by seed).
    kept = [trial(s, c, seed, v) for (s, c), values in TOP1.items() for seed, v in enumerate(values)
            if (s, c, seed) != ("global-magnitude", 8, 2)]
    areas = curve_areas(table(kept + [trial("random", 16, seed, 0.1) for seed in range(3)])).set_index("strategy")
    assert list(areas["seeds"]) == [2, 2] and list(areas["compression_high"]) == [8, 8]
    for strategy in ("global-magnitude", "random"):
        assert areas.loc[strategy, "area_mean"] == pytest.approx(np.mean([area(strategy, s) for s in (0, 1)]))


def test_each_dataset_and_model_has_its_own_grid():
    # lenet-5 reached 2x and 16x only: its area spans three doublings, beside lenet-300-100's 2-8x.
    other = [trial(s, c, seed, v, model="lenet-5") for s in ("global-magnitude", "random")
             for c, v in ((2, 0.9), (16, 0.5)) for seed in range(3)]
    areas = curve_areas(trials(other)).set_index(["model", "strategy"])
    assert areas.loc[("lenet-5", "random"), "area_mean"] == pytest.approx((0.9 + 0.5) / 2 * 3)
    assert areas.loc[("lenet-5", "random"), "compression_high"] == 16
    assert areas.loc[("lenet-300-100", "random"), "area_mean"] == pytest.approx(
        np.mean([area("random", s) for s in range(3)]))


def test_fewer_than_two_common_compressions_give_no_rows():
    assert curve_areas(table([trial("random", 2, seed, 0.9) for seed in range(3)])).empty
