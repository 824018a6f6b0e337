"""`shrink report` on runs written by the real trial code: small-mlp on digits, 2 strategies x 2 seeds."""

import math
import statistics

import pandas as pd
import pytest
from mlflow import MlflowClient
from scipy import stats

from shrink.report import build_report

STRATEGIES, SEEDS = ("global-magnitude", "random"), (0, 1)


@pytest.fixture(scope="module")
def real_sweep(make_store, tmp_path_factory):
    """A sweep parent run with four real trials nested under it (1 fine-tuning epoch each)."""
    import torch

    from shrink.experiment import TrialConfig, pretrain, run_trial

    threads = torch.get_num_threads()
    uri = make_store()
    client = MlflowClient(tracking_uri=uri)
    artifacts = tmp_path_factory.mktemp("artifacts")
    experiment = client.create_experiment("shrink", artifact_location=artifacts.as_uri())
    parent = client.create_run(experiment, tags={"shrink.kind": "sweep", "shrink.sweep": "real"}).info.run_id
    base = pretrain("small-mlp", "digits", epochs=2, cache_dir=tmp_path_factory.mktemp("bases"), threads=1,
                    progress=None)
    results = {}
    for strategy in STRATEGIES:
        for seed in SEEDS:
            config = TrialConfig.from_dict({
                "model": "small-mlp", "dataset": "digits", "strategy": strategy, "compression": 4.0,
                "seed": seed, "base_path": str(base.path), "tracking_uri": uri, "experiment_name": "shrink",
                "parent_run_id": parent, "sweep": "real", "finetune": {"epochs": 1}, "threads": 1,
            })
            results[strategy, seed] = run_trial(config)
    client.set_terminated(parent)
    torch.set_num_threads(threads)
    return uri, base, results


def test_report_reads_what_the_trials_recorded(real_sweep, tmp_path):
    uri, base, results = real_sweep
    report = build_report("real", tracking_uri=uri, out_dir=tmp_path)
    trials = pd.read_parquet(tmp_path / "trials.parquet").set_index(["strategy", "seed"])
    assert sorted(trials.index) == [(s, seed) for s in STRATEGIES for seed in SEEDS]
    assert set(trials["status"]) == {"finished"} and set(trials["base_sha256"]) == {base.sha256}
    for (strategy, seed), result in results.items():
        row = trials.loc[(strategy, seed)]
        assert row["run_id"] == result["run_id"]
        for metric in ("test_top1", "test_top5", "delta_top1", "compression_ratio", "theoretical_speedup",
                       "dense_test_top1", "epochs_run", "wall_time_s"):
            assert row[metric] == pytest.approx(result[metric], rel=1e-12), metric

    summary = pd.read_parquet(tmp_path / "summary.parquet").set_index("strategy")
    for strategy in STRATEGIES:
        top1 = [results[strategy, seed]["test_top1"] for seed in SEEDS]
        row = summary.loc[strategy]
        assert (row["count"], row["failed"]) == (2, 0)
        assert row["test_top1_mean"] == pytest.approx(statistics.mean(top1), rel=1e-12)
        assert row["test_top1_std"] == pytest.approx(statistics.stdev(top1), rel=1e-12, abs=1e-15)
        # small-mlp on 8x8 digits has 7,510 parameters; 4x keeps 1,878 of them.
        assert row["compression_ratio_mean"] == pytest.approx(7510 / 1878, rel=1e-12)

    # The one pair of strategies (no methods recorded, both are baselines), paired on the shared base and seeds.
    comparisons = pd.read_parquet(tmp_path / "comparisons.parquet").set_index("metric")
    for metric in ("test_top1", "test_top5"):
        row = comparisons.loc[metric]
        method, baseline = ([results[s, seed][metric] for seed in SEEDS] for s in STRATEGIES)
        assert (row["method"], row["baseline"], row["test"], row["n"]) == (*STRATEGIES, "paired", 2)
        assert row["mean_diff"] == pytest.approx(statistics.mean(method) - statistics.mean(baseline), abs=1e-12)
        differences = [m - b for m, b in zip(method, baseline)]
        if max(differences) - min(differences) > 1e-9:
            expected = stats.ttest_rel(method, baseline)
            assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
            assert row["ci_low"] == pytest.approx(expected.confidence_interval().low, rel=1e-9)
        else:  # equal differences (for example top-5 at 100% for both): no test
            assert math.isnan(row["p_value"]) and row["verdict"] == "untested"

    text = (tmp_path / "report.md").read_text()
    assert f"`{base.sha256}`" in text and "| finetune.epochs | 1 |" in text
    checks = {item.name: item.passed for item in report.checks}
    assert checks["same base checkpoint"] and checks["library and hardware"] and checks["dense control"]
    assert not checks["seeds"] and not checks["operating points"]  # 2 seeds, one compression
