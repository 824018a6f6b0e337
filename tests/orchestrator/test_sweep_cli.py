"""`shrink sweep` on the command line: the dry run, and exit status 2 with one line for bad input."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from shrink.cli import main
from helpers import digits_sweep, free_port


ROOT = Path(__file__).resolve().parents[2]
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
    other = f"sqlite:///{tmp_path / 'other' / 'runs.db'}"
    result = _sweep(str(digits_sweep(tmp_path)), "--dry-run", "--tracking-uri", other,
                    "--storage-path", str(tmp_path / "elsewhere"))
    assert result.exit_code == 0, result.output
    assert f"mlflow: {other} (experiment shrink)" in result.output.splitlines()
    assert not (tmp_path / "other").exists()  # probed, not made
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


def test_a_bad_shrink_compile_exits_2_with_one_line_before_anything_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("SHRINK_COMPILE", "true")
    result = _sweep(str(digits_sweep(tmp_path)))
    assert (result.exit_code, result.output) == (2, "Error: tiny.yaml: SHRINK_COMPILE must be 1 "
                                                    "(compile), 0 (do not) or unset (the device's default), not 'true'\n")
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


REFUSED = "Connection refused"


def _file(path: Path, text: str = "") -> Path:
    """A regular file at ``path`` (as a folder: one no one, root included, can make anything in)."""
    path.write_text(text)
    return path


def _artifacts_under_a_file(folder: Path) -> str:
    """A store whose experiment ``shrink`` keeps its artifacts under a regular file (unwritable even to root)."""
    from mlflow import MlflowClient

    _file(folder / "afile")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).create_experiment("shrink", artifact_location=str(folder / "afile" / "runs"))
    return uri


@pytest.mark.parametrize(
    ("store", "dry_run", "message"),
    [
        (lambda tmp, port: f"http://127.0.0.1:{port}", True,
         "tracking store {uri}: no MLflow server answers (Connection refused); start it, or give the address of one"),
        (lambda tmp, port: f"http://127.0.0.1:{port}", False,
         "tracking store {uri}: no MLflow server answers (Connection refused); start it, or give the address of one"),
        (lambda tmp, port: f"postgresql+psycopg://u:secret@127.0.0.1:{port}/x", False,
         "tracking store postgresql+psycopg://u:***@127.0.0.1:{port}/x: the database refuses the connection "
         '(connection failed: connection to server at "127.0.0.1", port {port} failed: Connection refused)'),
        (lambda tmp, port: f"sqlite:///{_file(tmp / 'afile') / 'mlflow.db'}", True,
         "tracking store {uri}: {tmp}/afile, where the database file goes, is not a folder"),
        (lambda tmp, port: f"sqlite:///{_file(tmp / 'mlruns').parent / 'mlflow.db'}", False,
         "artifact folder {tmp}/mlruns of experiment 'shrink' (tracking store {uri}) is not a folder"),
        (lambda tmp, port: _artifacts_under_a_file(tmp), True,
         "artifact folder {tmp}/afile/runs of experiment 'shrink' (tracking store {uri}) cannot be made "
         "({tmp}/afile is not a folder)"),
        (lambda tmp, port: f"sqlite:///{_file(tmp / 'mlflow.db', 'notes')}", True,
         "tracking store {uri}: not a store MLflow can read (file is not a database)"),
        (lambda tmp, port: str(tmp / "mlruns"), False,
         "tracking store {uri}: a folder store, which MLflow 3 no longer writes to "
         "(unless $MLFLOW_ALLOW_FILE_STORE=true); "
         "give sqlite:///PATH/mlflow.db or an MLflow server's http:// address"),
    ],
    ids=["http-dry-run", "http", "postgresql", "sqlite-folder", "default-artifacts", "experiment-artifacts",
         "not-a-database", "folder"],
)
def test_a_tracking_store_that_cannot_be_used_exits_2_in_seconds_before_ray(tmp_path, monkeypatch, store, dry_run,
                                                                            message):
    import ray

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact folder is ./mlruns
    port = free_port()
    uri = store(tmp_path, port)
    started = time.monotonic()
    result = _sweep(str(digits_sweep(tmp_path / "sweep")), "--tracking-uri", uri, *(["--dry-run"] * dry_run))
    assert time.monotonic() - started < 10
    assert result.exit_code == 2
    assert result.output == f"Error: {message.format(uri=uri, port=port, tmp=tmp_path)}\n"
    assert not ray.is_initialized() and not (tmp_path / "sweep" / "ray").exists()


def test_a_sweep_on_a_server_that_does_not_answer_ends_in_one_line_within_10_s_without_starting_ray(tmp_path):
    """The whole command, interpreter start included, as a user with a typo in the address sees it."""
    uri = f"http://127.0.0.1:{free_port()}"
    ray_tmp = tmp_path / "ray-tmp"
    env = os.environ | {"PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_tmp)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "shrink", "sweep", str(digits_sweep(tmp_path)), "--tracking-uri", uri],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 10
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"Error: tracking store {uri}: no MLflow server answers ({REFUSED}); start it, or give "
                           "the address of one\n")
    assert not ray_tmp.exists()


def test_a_server_that_takes_the_connection_but_never_answers_fails_after_the_probes_timeout():
    from shrink.experiment import ConfigError
    from shrink.experiment.tracking import probe_tracking

    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never reads or replies
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ConfigError) as failure:
            probe_tracking(uri, timeout_s=1)
    assert 1 <= time.monotonic() - started < 3
    assert str(failure.value) == (f"tracking store {uri}: no MLflow server answers (no answer within 1 s); start it, "
                                  "or give the address of one")
