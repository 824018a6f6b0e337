"""TrialRecorder: what lands in MLflow, reopening a run, and loud failures."""

import pandas as pd
import pytest

from shrink.experiment import RecordingError
from shrink.experiment.recording import (DataInput, EpochPoints, TrialRecorder, is_orphan, mark_errored,
                                         reference_rounds, trial_status)
from shrink.pruning.rounds import PruningRound


def test_a_run_is_created_reopened_and_finished_with_batched_writes(mlflow_uri, read_run, tmp_path):
    recorder = TrialRecorder.create(mlflow_uri, "exp", run_name="r", params={"a": 1, "finetune.lr": 0.5},
                                    tags={"shrink.kind": "trial", "mlflow.parentRunId": None})
    recorder.log_metrics({"val_top1": 0.5}, step=1)
    recorder.fail("Boom: out of luck")
    recorder = TrialRecorder.reopen(mlflow_uri, recorder.run_id)
    recorder.log_metrics({"val_top1": 0.75}, step=2)
    rounds = [PruningRound(2.0, {"fc.weight": 3}), PruningRound(4.0, {"fc.weight": 1})]
    recorder.log_artifacts(pd.DataFrame({"name": ["fc.weight"], "density": [0.25]}), {"seed": 3}, rounds)
    with pytest.raises(ValueError, match=f"^reference_run {recorder.run_id} has not finished \\(status running\\)$"):
        reference_rounds(mlflow_uri, recorder.run_id, {"a": 1})
    recorder.finish({"test_top1": 0.9})
    assert reference_rounds(mlflow_uri, recorder.run_id, {"a": 1, "finetune.lr": 0.5}) == rounds
    with pytest.raises(ValueError, match=f"^reference_run {recorder.run_id} is another trial: a=1$"):
        reference_rounds(mlflow_uri, recorder.run_id, {"a": 2, "finetune.lr": 0.5})

    run, history = read_run(recorder.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "r"
    assert run.data.params == {"a": "1", "finetune.lr": "0.5"}
    assert run.data.tags["shrink.kind"] == "trial" and run.data.tags["shrink.status"] == "finished"
    assert "shrink.failure" not in run.data.tags and "mlflow.parentRunId" not in run.data.tags
    assert history == {"val_top1": [(1, 0.5), (2, 0.75)], "test_top1": [(0, 0.9)]}
    artifacts = tmp_path / "mlruns"
    assert (next(artifacts.rglob("layers.csv"))).read_text() == "name,density\nfc.weight,0.25\n"
    assert (next(artifacts.rglob("config.json"))).read_text() == '{\n  "seed": 3\n}\n'


def test_a_failed_run_says_why(mlflow_uri, read_run):
    recorder = TrialRecorder.create(mlflow_uri, "exp", run_name="r", params={}, tags={})
    recorder.fail("TrialDiverged: epoch 1: training loss became nan")
    run, _ = read_run(recorder.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["shrink.status"] == "failed"
    assert run.data.tags["shrink.failure"] == "TrialDiverged: epoch 1: training loss became nan"


def test_logging_errors_raise_recording_error_naming_the_store(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    uri = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"
    with pytest.raises(RecordingError, match=f"MLflow at {uri}: creating the trial's run failed: "):
        TrialRecorder.create(uri, "exp", run_name="r", params={}, tags={})


def test_logging_to_a_deleted_run_raises_recording_error(mlflow_uri):
    recorder = TrialRecorder.create(mlflow_uri, "exp", run_name="r", params={}, tags={})
    recorder.client.delete_run(recorder.run_id)
    with pytest.raises(RecordingError, match=rf"logging train_loss \(run {recorder.run_id}\) failed"):
        recorder.log_metrics({"train_loss": 1.0}, step=1)


def test_every_write_repeated_changes_nothing(mlflow_uri, read_run):
    inputs = tuple(DataInput("digits", split, f"hash-{split}", 10) for split in ("train", "val", "test"))
    recorder = TrialRecorder.create(mlflow_uri, "exp", run_name="r", params={"seed": 1}, tags={}, inputs=inputs)
    points = EpochPoints.stamped(1, {"val_top1": 0.5, "train_loss": 2.0})
    for _ in range(2):  # what a retry after a lost answer, or a trial resumed from its checkpoint, writes again
        recorder.log_points(points)
        recorder.log_params({"seed": 1})
        recorder.client.log_inputs(recorder.run_id, datasets=[data.to_mlflow() for data in inputs])
    assert EpochPoints.from_dict(points.to_dict()) == points
    run, history = read_run(recorder.run_id)
    assert history == {"val_top1": [(1, 0.5)], "train_loss": [(1, 2.0)]}
    assert sorted(i.dataset.name for i in run.inputs.dataset_inputs) == ["digits/test", "digits/train", "digits/val"]
    with pytest.raises(RecordingError, match="logging seed"):  # another value of a param is refused
        recorder.log_params({"seed": 2})


def test_runs_a_trial_left_running_are_marked_failed_and_an_orphan_is_told_apart(mlflow_uri, read_run):
    from mlflow import MlflowClient

    key = {"model": "small-mlp", "strategy": "random", "compression": 2.0, "seed": 0, "base_name": None}
    tags = {"mlflow.parentRunId": "parent", "shrink.kind": "trial"}
    left = TrialRecorder.create(mlflow_uri, "exp", run_name="left", params=key, tags=tags)
    other = TrialRecorder.create(mlflow_uri, "exp", run_name="other", params={**key, "seed": 1}, tags=tags)
    orphan = TrialRecorder.create(mlflow_uri, "exp", run_name="orphan", params={}, tags=tags)
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment_id = client.get_run(left.run_id).info.experiment_id
    flat = {k: str(v) for k, v in key.items()}
    assert mark_errored(client, experiment_id, "parent", flat, "RecordingError: MLflow at X: down") == 1
    assert mark_errored(client, experiment_id, "parent", flat, "again") == 0  # failed already: not running
    run, _ = read_run(left.run_id)
    assert (run.info.status, trial_status(run)) == ("FAILED", ("failed", "RecordingError: MLflow at X: down"))
    assert [is_orphan(read_run(r.run_id)[0]) for r in (left, other, orphan)] == [False, False, True]
