"""`shrink sweep` on the command line: the dry run, and exit status 2 with one line for bad input."""

import os

import pytest
import torch
from click.testing import CliRunner

from shrink.cli import main
from helpers import digits_sweep, free_port


CPUS = len(os.sched_getaffinity(0))
GPUS = torch.cuda.device_count()


def _sweep(*args: str):
    return CliRunner().invoke(main, ["sweep", *args])


def test_dry_run_prints_grid_and_resources_and_starts_nothing(tmp_path):
    import ray

    path = digits_sweep(tmp_path)
    result = _sweep(str(path), "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "sweep tiny: 8 trials on digits (1 model x 2 strategies x 2 compressions x 2 seeds)",
        "bases: small-mlp seed 0 (pretrain epochs: 3)",
        "each trial: 1 CPU, 0 GPU; retries 2",
        "methods: none (no matched baselines needed)",
        "#  model      strategy          compression  seed",
        "1  small-mlp  global-magnitude  2            0",
        "2  small-mlp  global-magnitude  2            1",
        "3  small-mlp  global-magnitude  4            0",
        "4  small-mlp  global-magnitude  4            1",
        "5  small-mlp  random            2            0",
        "6  small-mlp  random            2            1",
        "7  small-mlp  random            4            0",
        "8  small-mlp  random            4            1",
        f"this machine: {CPUS} trials at a time on {CPUS} CPUs and {GPUS} GPUs",
        f"mlflow: sqlite:///{tmp_path / 'mlflow.db'} (experiment shrink)",
        f"storage: {tmp_path / 'ray' / 'tiny'}",
    ]
    assert not ray.is_initialized()
    assert not (tmp_path / "ray").exists() and not (tmp_path / "mlflow.db").exists()


def test_options_override_the_sweep_files_tracking_and_storage(tmp_path):
    result = _sweep(str(digits_sweep(tmp_path)), "--dry-run", "--tracking-uri", "http://mlflow:5000",
                    "--storage-path", str(tmp_path / "elsewhere"))
    assert result.exit_code == 0, result.output
    assert "mlflow: http://mlflow:5000 (experiment shrink)" in result.output.splitlines()
    assert f"storage: {tmp_path / 'elsewhere' / 'tiny'}" in result.output.splitlines()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("models: [small-mlp]", "models: [small-rnn]"), "tiny.yaml: models: unknown model 'small-rnn'"),
        (("[global-magnitude, random]", "[global-magnitude, l0]"), "tiny.yaml: strategies: unknown strategy 'l0'"),
        (("compressions: [2, 4]", "compressions: [0.5]"), "tiny.yaml: compressions: 0.5 is not a compression ratio"),
        (("compressions: [2, 4]", "compressions: [2, 16]"), "tiny.yaml: compressions: compression 16 is unreachable for small-mlp: at most 6.76577"),
        (("models: [small-mlp]", "models: [small-mlp"), "tiny.yaml: malformed YAML at line 4"),
        (("name: tiny", "name: tiny\nresources: {cpus: 4096}"),
         f"resources.cpus: a trial asks for 4096 CPUs but this machine has {CPUS}"),
        (("name: tiny", "name: tiny\nresources: {gpus: 64}"),
         f"resources.gpus: a trial asks for 64 GPUs but this machine has {GPUS}"),
    ],
)
def test_bad_sweep_files_exit_2_with_one_line_before_anything_starts(tmp_path, edit, message):
    path = digits_sweep(tmp_path)
    path.write_text(path.read_text().replace(*edit))
    result = _sweep(str(path))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert message in result.output
    assert not (tmp_path / "ray").exists() and not (tmp_path / "mlflow.db").exists()


def test_missing_dataset_files_exit_2(monkeypatch):
    monkeypatch.delenv("SHRINK_DATA", raising=False)
    result = _sweep("--preset", "cifar10-resnet56", "--dry-run")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith("Error: ") and "cifar10" in result.output


def test_storage_must_be_a_folder_not_a_uri(tmp_path):
    result = _sweep(str(digits_sweep(tmp_path)), "--dry-run", "--storage-path", "s3://bucket/ray")
    assert result.exit_code == 2
    assert result.output == ("Error: storage_path: s3://bucket/ray is a URI; give a folder (on a cluster, one that "
                             "every node mounts: trials share their base checkpoints as files)\n")


def test_resume_needs_an_interrupted_sweep(tmp_path):
    result = _sweep(str(digits_sweep(tmp_path)), "--resume")
    assert result.exit_code == 2
    assert result.output == f"Error: nothing to resume: no sweep state in {tmp_path / 'ray' / 'tiny'}; run without --resume\n"


def test_conflicting_options_are_usage_errors(tmp_path):
    path = str(digits_sweep(tmp_path))
    result = _sweep(path, "--preset", "demo")
    assert (result.exit_code, result.output) == (2, "Error: give a sweep file or --preset, not both\n")
    (tmp_path / "c.yaml").write_text("cluster_name: c\nprovider: {type: local}\n")
    result = _sweep(path, "--cluster", str(tmp_path / "c.yaml"), "--address", "auto")
    assert result.exit_code == 2
    assert "--cluster and --address exclude each other" in result.output


def test_an_address_where_no_ray_head_answers_exits_2_at_once(tmp_path):
    port = free_port()
    result = _sweep(str(digits_sweep(tmp_path)), "--address", f"127.0.0.1:{port}")
    assert result.exit_code == 2
    assert result.output == (f"Error: --address 127.0.0.1:{port}: no Ray head answers there (Connection refused); "
                             "give the address that `ray start --head` printed (host:port), or auto on a cluster node\n")
