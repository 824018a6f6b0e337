"""A tracking store that fails under a running sweep: four trials at once (a Ray cluster of two nodes of two
CPUs) record to a real ``mlflow server`` on a real PostgreSQL.

- The server is killed and restarted, then PostgreSQL is restarted: MLflow's client retries (minutes by
  default) carry the trials over both.
- The server stays down for longer than the client's retry window (shortened here to 2 s, in the trials'
  processes and the driver's): the trials error, the driver stops with one line naming the store, and
  ``--resume`` with the server back finishes every trial from its checkpoint in its own run.

Either way, at the end every trial has one run and every per-epoch metric point is there exactly once.
"""

import contextlib
import re
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import digits_sweep
from shrink.experiment import RecordingError
from shrink.experiment.recording import Status, trial_status, trials_filter
from shrink.orchestrator import SweepOutcome, load_spec, run_sweep
from sweep_testing import identity, local_cluster, sweep_beside, trial_runs
from tracking_servers import kill_mlflow_server, mlflow_server, postgres_server, restart_postgres

EPOCHS = 16
EPOCH_METRICS = ("train_loss", "val_top1", "val_top5", "val_loss", "epoch_time_s", "images_per_s")
GRID = sorted((s, c, "0") for s in ("global-magnitude", "random") for c in ("2.0", "4.0"))
# MLflow's client retry window, shortened: 2 retries backing off 0 s then 2 s, refused connections at once.
SHORT_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}
WINDOW_S = 2


@pytest.fixture
def cluster(ray_tmpdir):
    with local_cluster(cpus_per_node=2) as cluster:
        yield cluster


@pytest.fixture
def short_retries_cluster(ray_tmpdir, monkeypatch):
    """A cluster whose trials, and this process (the driver), give up on an MLflow request after 2 s: its nodes'
    processes inherit the environment they were started in."""
    for name, value in SHORT_RETRIES.items():
        monkeypatch.setenv(name, value)
    with local_cluster(cpus_per_node=2) as cluster:
        yield cluster


def _epochs_logged(client: MlflowClient, experiment_id: str) -> int:
    """The most epochs any running trial of the store has logged so far."""
    runs = client.search_runs([experiment_id], "tags.`shrink.kind` = 'trial'")
    return max((len(client.get_metric_history(run.info.run_id, "val_top1")) for run in runs), default=0)


def _kill_after_the_first_epoch(server, sweep_ended) -> float:
    """Wait until some trial of the store has logged an epoch, then SIGKILL the server; when it was killed."""
    client = MlflowClient(server.url)
    while not sweep_ended.is_set() and not client.search_experiments(filter_string="name = 'shrink'"):
        time.sleep(0.1)
    experiment_id = client.get_experiment_by_name("shrink").experiment_id
    while not sweep_ended.is_set() and _epochs_logged(client, experiment_id) < 1:
        time.sleep(0.05)
    kill_mlflow_server(server)
    return time.time()


@contextlib.contextmanager
def _tracked_sweep(tmp_path, name: str, **options: str):
    """A PostgreSQL, an MLflow server on it and the file of a 4-trial sweep recording there, as
    ``(restart, postgres, server, path)``: ``restart()`` starts the server again at its address (it runs until the
    block ends)."""
    artifacts = tmp_path / "artifacts"
    with contextlib.ExitStack() as servers:
        postgres = servers.enter_context(postgres_server())
        server = servers.enter_context(mlflow_server(postgres.uri, artifacts))
        path = digits_sweep(tmp_path, name, seeds="[0]", finetune=f"{{epochs: {EPOCHS}, patience: {EPOCHS}}}",
                            tracking_uri=server.url, **options)
        port = int(server.url.rsplit(":", 1)[1])
        yield (lambda: servers.enter_context(mlflow_server(postgres.uri, artifacts, port=port))), postgres, server, path


def test_a_restarted_mlflow_server_and_postgres_lose_no_run_and_write_no_point_twice(cluster, tmp_path, capsys):
    with _tracked_sweep(tmp_path, "restarts", retries="3") as (restart, postgres, first, path):
        faults: dict[str, float] = {}

        def restart_the_server_then_postgres(sweep_ended):
            faults["mlflow server killed"] = _kill_after_the_first_epoch(first, sweep_ended)
            restart()
            faults["mlflow server back"] = time.time()
            restart_postgres(postgres)
            faults["postgres restarted"] = time.time()

        outcome = sweep_beside(restart_the_server_then_postgres, path, cluster.address)

        assert list(faults) == ["mlflow server killed", "mlflow server back", "postgres restarted"]
        assert (outcome.total, outcome.finished, outcome.errored) == (4, 4, 0)
        runs = trial_runs(first.url, outcome.parent_run_id)
        assert sorted(identity(run) for run in runs) == GRID  # one run per trial
        assert {(run.info.status, trial_status(run)) for run in runs} == {("FINISHED", (Status.FINISHED, None))}
        # Both faults struck while trials ran: some trial ended after PostgreSQL came back.
        assert max(run.info.end_time for run in runs) / 1000 > faults["postgres restarted"]

        written, found, twice, every = _points(first.url, runs, outcome.parent_run_id)
        with capsys.disabled():
            print(f"\nmlflow server killed and restarted ({faults['mlflow server back'] - faults['mlflow server killed']:.1f} s "
                  f"down), then postgres restarted: {len(runs)}/{outcome.total} runs found ({every} in the store); "
                  f"per-epoch metric points written {written}, found {found}, duplicated {twice}")


def _points(url: str, runs: list, parent_run_id: str) -> tuple[int, int, int, int]:
    """Per-epoch metric points of ``runs`` (each asserted to hold every epoch once): written, found, found twice;
    and the runs the store holds under the parent."""
    client = MlflowClient(url)
    written = found = twice = 0
    for run in runs:
        assert int(run.data.metrics["epochs_run"]) == EPOCHS
        for key in EPOCH_METRICS:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            written += EPOCHS
            found += len(set(steps))
            twice += len(steps) - len(set(steps))
            assert sorted(steps) == list(range(1, EPOCHS + 1)), key  # every epoch, exactly once
    every = client.search_runs([runs[0].info.experiment_id], trials_filter(parent_run_id))
    return written, found, twice, len(every)


def test_a_server_down_for_longer_than_the_retry_window_stops_the_sweep_and_resume_loses_nothing(
        short_retries_cluster, tmp_path, capsys):
    with _tracked_sweep(tmp_path, "outage", retries="0", measure_latency="false") as (restart, _, first, path):
        faults: dict[str, float] = {}

        def keep_the_server_down_until_the_driver_stops(sweep_ended):
            faults["mlflow server killed"] = _kill_after_the_first_epoch(first, sweep_ended)
            sweep_ended.wait()
            faults["driver stopped"] = time.time()
            restart()

        with pytest.raises(RecordingError) as stopped:
            sweep_beside(keep_the_server_down_until_the_driver_stops, path, short_retries_cluster.address)
        assert list(faults) == ["mlflow server killed", "driver stopped"]
        message = str(stopped.value)
        assert "\n" not in message
        assert re.fullmatch(rf"MLflow at {first.url}: closing sweep 'outage' \(parent run \w+\) failed: "
                            rf"MlflowException: .+; 0 of 4 trials finished, 4 errored, their state in "
                            rf"{tmp_path / 'ray' / 'outage'}: once the store answers, `shrink sweep \.\.\. --resume` "
                            r"records the rest", message), message

        outcome = run_sweep(load_spec(path), address=short_retries_cluster.address, resume=True)

        assert (outcome.total, outcome.finished, outcome.errored) == (4, 4, 0)
        runs = trial_runs(first.url, outcome.parent_run_id)
        assert sorted(identity(run) for run in runs) == GRID  # one run per trial
        assert {(run.info.status, trial_status(run)) for run in runs} == {("FINISHED", (Status.FINISHED, None))}
        written, found, twice, every = _points(first.url, runs, outcome.parent_run_id)
        with capsys.disabled():
            down = faults["driver stopped"] - faults["mlflow server killed"]
            print(f"\nmlflow server down {down:.1f} s (retry window {WINDOW_S} s): the driver stopped with 4 of 4 "
                  f"trials errored; after --resume {len(runs)}/"
                  f"{outcome.total} runs found ({every} in the store); per-epoch metric points written {written}, "
                  f"found {found}, duplicated {twice}")


def test_the_summary_names_each_errored_trial_and_why():
    reason = "RecordingError: MLflow at http://127.0.0.1:5000: logging train_loss (run r1) failed: OSError: down"
    outcome = SweepOutcome(name="outage", parent_run_id="p1", storage=Path("/s/outage"), total=4, finished=3, failed=0,
                           errored=1, nodes=2, ray_start_s=1.0, pretrain_s=2.0, tune_s=3.0, latency_s=0.0,
                           errors=(f"small-mlp/random/x2/s0: {reason}",))
    assert outcome.summary().splitlines() == [
        "sweep outage: 4 trials, 3 finished, 0 diverged, 1 errored, 0 unfinished; on 2 nodes",
        "wall time: Ray start 1.0 s, bases 2.0 s, trials 3.0 s, timing 0.0 s",
        "MLflow parent run p1; Ray Tune state /s/outage",
        f"errored: small-mlp/random/x2/s0: {reason}",
        "to run the rest: shrink sweep ... --resume (errored trials restart from their checkpoints)",
    ]
