"""`shrink pretrain` and `shrink trial` from the command line."""

import json

from click.testing import CliRunner

from helpers import free_port
from shrink.cli import main


def test_pretrain_prints_the_checkpoint_and_a_second_call_reuses_it(tmp_path):
    args = ["pretrain", "--model", "small-mlp", "--dataset", "digits", "--epochs", "1", "--threads", "1",
            "--out", str(tmp_path / "b")]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines[0].startswith(f"path    {tmp_path / 'b'}/small-mlp_digits_digits-adam-e1-")
    assert lines[0].endswith(".pt")
    assert lines[1].startswith("sha256  ") and len(lines[1].split()[1]) == 64
    assert "pretrain small-mlp on digits: epoch 1/1 loss" in first.stderr
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0 and second.stdout == first.stdout and second.stderr == ""


def test_trial_prints_epochs_and_final_metrics(digits_base, mlflow_uri):
    result = CliRunner().invoke(main, [
        "trial", "--model", "small-mlp", "--dataset", "digits", "--strategy", "global-magnitude",
        "--compression", "4", "--base", str(digits_base.path), "--epochs", "1", "--threads", "1",
        "--tracking-uri", mlflow_uri,
        "--set", "finetune.lr=1e-3", "--set", "prune_classifier=true"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("epoch 1: train loss ")
    metrics = json.loads(result.stdout)
    assert metrics["epochs_run"] == 1 and metrics["nonzero_size"] == 1878

    from mlflow import MlflowClient

    params = MlflowClient(tracking_uri=mlflow_uri).get_run(metrics["run_id"]).data.params
    assert (params["finetune.lr"], params["prune_classifier"]) == ("0.001", "True")


def test_bad_input_is_a_one_line_usage_error(digits_base, mlflow_uri):
    common = ["trial", "--model", "small-mlp", "--dataset", "digits", "--compression", "4",
              "--tracking-uri", mlflow_uri, "--base", str(digits_base.path)]
    unknown = CliRunner().invoke(main, [*common, "--strategy", "magic"])
    assert unknown.exit_code == 2
    assert unknown.stderr.splitlines()[-1].startswith("Error: unknown strategy 'magic'; known: ")
    bad_key = CliRunner().invoke(main, [*common, "--strategy", "random", "--set", "finetune.speed=3"])
    assert bad_key.exit_code == 2
    assert bad_key.stderr.splitlines()[-1].startswith("Error: unknown trial config key 'finetune.speed'; allowed: ")
    one_gpu = CliRunner().invoke(main, [*common, "--strategy", "random", "--workers", "2", "--device", "cuda:1"])
    assert one_gpu.exit_code == 2
    assert one_gpu.stderr.splitlines()[-1] == (
        "Error: device 'cuda:1' names one GPU, but each of the 2 workers gets its own GPU from Ray Train: give "
        "device 'cuda' (and choose the GPUs with CUDA_VISIBLE_DEVICES)")
    refused = f"http://127.0.0.1:{free_port()}"  # probed before the base is read or any run is made
    unreachable = CliRunner().invoke(main, [*common[:-4], "--strategy", "random", "--tracking-uri", refused])
    assert unreachable.exit_code == 2
    assert unreachable.stderr.splitlines()[-1] == (f"Error: tracking store {refused}: no MLflow server answers "
                                                   "(Connection refused); start it, or give the address of one")
