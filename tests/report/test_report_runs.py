"""Reading a sweep's runs from MLflow into the per-trial table."""

import copy
import json
import math

import pandas as pd
import pytest
from report_sweeps import BASE, FAILURE, TOP1, small_sweep, table, trial, write_sweep

from shrink.report.analysis import analyse
from shrink.report.runs import COLUMNS, SweepNotFound, find_sweep, list_sweeps, load_trials


def test_sweeps_are_listed_newest_first_and_the_newest_is_the_default(store):
    assert [s.name for s in list_sweeps(store)] == ["small", "old"]
    assert find_sweep(store).name == "small"
    assert find_sweep(store, "old").name == "old"


def test_unknown_sweep_names_the_available_ones(store):
    with pytest.raises(SweepNotFound, match=r"unknown sweep 'nope' in sqlite:///.*; available: small, old$"):
        find_sweep(store, "nope")


def test_missing_sqlite_store_is_an_error_not_a_new_store(tmp_path):
    with pytest.raises(SweepNotFound, match="no MLflow store at .*missing.db"):
        find_sweep(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()


def test_store_without_sweeps(make_store):
    uri = make_store()
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri).create_experiment("shrink")
    with pytest.raises(SweepNotFound, match="no sweep runs in .*: run `shrink sweep` first"):
        find_sweep(uri)


def test_trial_table_has_one_row_per_trial_in_a_fixed_order(store):
    trials = load_trials(find_sweep(store, "small"))
    assert len(trials) == 19
    assert list(trials.columns) == [
        *COLUMNS, "params.finetune.epochs", "params.finetune.lr", "params.finetune.optimizer",
    ]
    keys = list(zip(trials["strategy"], trials["compression"], trials["seed"]))
    assert keys == sorted(keys)
    assert keys[:3] == [("global-magnitude", 1.0, 0), ("global-magnitude", 1.0, 1), ("global-magnitude", 1.0, 2)]
    assert str(trials["seed"].dtype) == "Int64" and trials["compression"].dtype == "float64"


def test_a_shared_dense_control_counts_as_each_strategys_compression_1_trial():
    # The small sweep's compression-1 trials (0.98 for both strategies and every seed, as one dense model
    # fine-tuned alike gives), recorded as one shared control run per seed: the same tables.
    separate = small_sweep()
    shared = [t for t in copy.deepcopy(separate) if t["params"]["compression"] != "1" or t["params"]["strategy"] != "random"]
    for control in shared[:3]:  # global-magnitude's, seeds 0, 1, 2
        control["params"]["control_for"] = json.dumps(["global-magnitude", "random"])
    mine, theirs = table(shared), table(separate)
    assert (len(shared), len(mine), len(theirs)) == (16, 19, 19)
    controls = mine[mine["compression"] == 1]
    assert list(zip(controls["strategy"], controls["seed"], controls["run_id"])) == [
        ("global-magnitude", 0, "run0000"), ("global-magnitude", 1, "run0001"), ("global-magnitude", 2, "run0002"),
        ("random", 0, "run0000"), ("random", 1, "run0001"), ("random", 2, "run0002")]
    assert list(mine.columns) == list(theirs.columns)  # control_for is no setting of the report's
    pd.testing.assert_frame_equal(mine.drop(columns="run_id"), theirs.drop(columns="run_id"))
    ours, others = analyse(mine, None), analyse(theirs, None)
    for name in ("summary", "controls", "comparisons", "curves"):
        pd.testing.assert_frame_equal(getattr(ours, name), getattr(others, name))
    assert ours.finetuned == others.finetuned


def test_trial_values_come_from_params_tags_and_metrics(store):
    trials = load_trials(find_sweep(store, "small")).set_index(["strategy", "compression", "seed"])
    row = trials.loc[("global-magnitude", 4.0, 1)]
    assert row["test_top1"] == TOP1[("global-magnitude", 4)][1] == 0.92
    assert row["compression_ratio"] == 4.0 and row["theoretical_speedup"] == pytest.approx(3.4)
    assert row["status"] == "finished" and row["base_sha256"] == BASE
    assert row["dataset"] == "mnist" and row["model"] == "lenet-300-100"
    assert row["params.finetune.lr"] == "0.0003"
    assert row["hardware"] == "2-core test CPU"


def test_failed_trial_keeps_its_reason_and_has_no_results(store):
    trials = load_trials(find_sweep(store, "small"))
    failed = trials[trials["status"] == "failed"]
    assert len(failed) == 1
    row = failed.iloc[0]
    assert (row["strategy"], row["compression"], row["seed"], row["failure"]) == ("random", 4.0, 3, FAILURE)
    assert math.isnan(row["test_top1"]) and row["dense_test_top1"] == 0.98


def test_untagged_runs_count_as_running_or_failed(make_store):
    uri = make_store()
    done, live = trial("random", 2, 0, 0.5), trial("random", 2, 1, 0.5)
    for t in (done, live):
        del t["tags"]["shrink.status"]
    parent = write_sweep(uri, "untagged", [done])
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_run(parent).info.experiment_id
    client.create_run(experiment, tags={"mlflow.parentRunId": parent} | live["tags"])
    trials = load_trials(find_sweep(uri))
    assert list(trials["status"]) == ["failed", "running"]
    assert trials["failure"].iloc[0] == "MLflow run ended FINISHED without a shrink.status tag"


def test_progress_hears_the_running_count(store, monkeypatch):
    monkeypatch.setattr("shrink.report.runs.PAGE_SIZE", 8)
    heard = []
    trials = load_trials(find_sweep(store, "small"), progress=heard.append)
    assert heard == [8, 16, 19] and len(trials) == 19


def test_sweep_without_trials_is_an_error(make_store):
    uri = make_store()
    parent = write_sweep(uri, "empty", [])
    with pytest.raises(SweepNotFound, match=f"sweep 'empty' \\(run {parent}\\) has no trial runs yet"):
        load_trials(find_sweep(uri))
