"""The base as a factor: each cell's variance between and within named bases (checked against the method of
moments by hand and scipy's F test), verdicts that change with the base, and the files of a two-base report."""

import numpy as np
import pandas as pd
import pytest
from report_sweeps import table, trial, write_sweep
from scipy import stats

from shrink.report import build_report
from shrink.report.bases import named_bases, variance_by_base, verdicts_by_base

# Test top-1 over seeds 0-3 on two bases: on "fast", gradient beats magnitude at 4x; on "slow" it loses (Figure 8).
TOP1 = {
    ("fast", "global-gradient"): (0.93, 0.945, 0.932, 0.95),
    ("fast", "global-magnitude"): (0.90, 0.91, 0.905, 0.915),
    ("slow", "global-gradient"): (0.86, 0.872, 0.868, 0.874),
    ("slow", "global-magnitude"): (0.89, 0.90, 0.895, 0.905),
}


def named(base: str, *args, **kwargs) -> dict:
    t = trial(*args, base=base * 32, **kwargs)
    t["params"]["base_name"] = base
    return t


def trials() -> list[dict]:
    return [named(base, strategy, 4, seed, value) for (base, strategy), values in TOP1.items()
            for seed, value in enumerate(values)]


def test_a_cells_variance_splits_into_between_and_within_bases_as_the_method_of_moments_says():
    frame = variance_by_base(table(trials())).set_index("strategy")
    fast, slow = np.array(TOP1["fast", "global-gradient"]), np.array(TOP1["slow", "global-gradient"])
    grand = np.concatenate([fast, slow]).mean()
    msb = 4 * ((fast.mean() - grand) ** 2 + (slow.mean() - grand) ** 2) / 1  # k - 1 = 1
    msw = (((fast - fast.mean()) ** 2).sum() + ((slow - slow.mean()) ** 2).sum()) / 6  # N - k = 6
    n0 = (8 - (16 + 16) / 8) / 1
    row = frame.loc["global-gradient"]
    assert (row["bases"], row["n"]) == (2, 8)
    assert row["within_var"] == pytest.approx(msw)
    assert row["between_var"] == pytest.approx((msb - msw) / n0)
    assert row["between_share"] == pytest.approx(((msb - msw) / n0) / ((msb - msw) / n0 + msw))
    assert row["p_value"] == pytest.approx(stats.f_oneway(fast, slow).pvalue)
    assert row["between_share"] > 0.9  # the bases differ by 7 points, the seeds by about 1


def test_verdicts_that_change_with_the_base_are_flagged():
    verdicts = verdicts_by_base(table(trials()), ("global-gradient",))
    top1 = verdicts[verdicts["metric"] == "test_top1"].iloc[0]
    assert (top1["method"], top1["baseline"], top1["compression"]) == ("global-gradient", "global-magnitude", 4.0)
    assert top1["verdicts"] == "fast: better; slow: worse" and not top1["agree"]
    one_base = table([t for t in trials() if t["params"]["base_name"] == "fast"])
    assert named_bases(one_base) == ["fast"] and verdicts_by_base(one_base, ("global-gradient",)).empty
    assert variance_by_base(one_base).empty


def test_a_two_base_report_writes_the_decomposition_the_flags_and_a_figure_per_base(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    controls = [named(base, s, 1, seed, 0.98) for base in ("fast", "slow")
                for s in ("global-gradient", "global-magnitude") for seed in range(4)]
    write_sweep(uri, "two-bases", trials() + controls, methods=["global-gradient"])
    report = build_report("two-bases", tracking_uri=uri, out_dir=tmp_path / "out")
    names = {path.name for path in report.files}
    assert {"bases.parquet", "base_verdicts.parquet", "mnist_lenet-300-100_base-fast.png",
            "mnist_lenet-300-100_base-slow.png"} <= names
    decomposed = pd.read_parquet(tmp_path / "out" / "bases.parquet")
    assert list(zip(decomposed["strategy"], decomposed["compression"])) == [
        ("global-gradient", 1.0), ("global-gradient", 4.0), ("global-magnitude", 1.0), ("global-magnitude", 4.0)]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Bases" in text
    assert "change their verdict with the base" in text and "fast: better; slow: worse" in text
