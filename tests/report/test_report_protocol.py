"""``shrink report A B``: last month's baselines and this month's method in one report, where (and only where)
the two sweeps ran the same protocol."""

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from report_sweeps import table, trial, write_sweep

from shrink.cli import main
from shrink.report.protocol import combine

SEEDS = range(4)


def baselines() -> list[dict]:
    return [trial(s, c, seed, v - 0.01 * seed) for s, v in (("global-magnitude", 0.93), ("random", 0.80))
            for c in (1, 4) for seed in SEEDS]


def method(**params) -> list[dict]:
    trials = [trial("global-gradient", c, seed, 0.95 - 0.01 * seed + 0.002 * (seed % 2)) for c in (1, 4)
              for seed in SEEDS]
    for t in trials:
        t["params"].update(params)
    return trials


def test_matching_sweeps_combine_and_a_repeated_cell_counts_once():
    combined = combine([("baselines", table(baselines())), ("method", table(method() + baselines()[:1]))])
    assert len(combined.trials) == 16 + 8
    assert combined.trials.groupby("sweep").size().to_dict() == {"baselines": 16, "method": 8}
    assert combined.refused == ("sweep method: 1 trials repeat cells an earlier sweep holds; the earlier ones are "
                                "kept",)


@pytest.mark.parametrize(("change", "field"), [
    ({"finetune.lr": "0.001"}, "finetune.lr 0.001 (vs 0.0003)"),
    ({"schedule": "iterative"}, "schedule iterative (vs (none))"),
])
def test_a_sweep_of_another_protocol_is_refused_naming_the_field(change, field):
    combined = combine([("baselines", table(baselines())), ("method", table(method(**change)))])
    assert set(combined.trials["sweep"]) == {"baselines"}
    assert combined.refused == (f"sweep method: mnist/lenet-300-100: {field} differs from sweep baselines's; its 8 "
                                "trials are left out",)


def test_another_base_or_shrink_version_is_another_protocol():
    other_base = method()
    for t in other_base:
        t["tags"]["shrink.base_sha256"] = "cd" * 32
    assert "base_sha256" in combine([("a", table(baselines())), ("b", table(other_base))]).refused[0]
    newer = method()
    for t in newer:
        t["tags"]["shrink.versions"] = json.dumps({"shrink": "0.2.0"})
    assert "shrink_version 0.2.0 (vs )" in combine([("a", table(baselines())), ("b", table(newer))]).refused[0]


def test_shrink_report_a_b_compares_the_later_method_with_the_earlier_baselines(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_sweep(uri, "baselines", baselines(), methods=[])
    write_sweep(uri, "method", method(), methods=["global-gradient"])
    result = CliRunner().invoke(main, ["report", "baselines", "method", "--tracking-uri", uri,
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "report.md").read_text()
    assert "Combined with sweep `method`" in text and "- nothing left out" in text
    comparisons = pd.read_parquet(tmp_path / "out" / "comparisons.parquet")
    assert set(zip(comparisons["method"], comparisons["baseline"])) == {("global-gradient", "global-magnitude"),
                                                                         ("global-gradient", "random")}
