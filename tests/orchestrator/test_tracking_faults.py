"""A tracking store that fails under a running sweep: four trials at once (a Ray cluster of two nodes of two
CPUs) record to a real ``mlflow server`` on a real PostgreSQL while the server is killed and restarted, then
PostgreSQL is restarted. MLflow's client retries (up to 2 minutes) carry the trials over both; at the end
every trial has one run and every per-epoch metric point is there exactly once.
"""

import contextlib
import time

import pytest
from mlflow.tracking import MlflowClient

from helpers import digits_sweep
from shrink.experiment.recording import Status, trial_status, trials_filter
from sweep_testing import identity, local_cluster, sweep_beside, trial_runs
from tracking_servers import kill_mlflow_server, mlflow_server, postgres_server, restart_postgres

EPOCHS = 16
EPOCH_METRICS = ("train_loss", "val_top1", "val_top5", "val_loss", "epoch_time_s", "images_per_s")
GRID = sorted((s, c, "0") for s in ("global-magnitude", "random") for c in ("2.0", "4.0"))


@pytest.fixture(scope="module")
def cluster(ray_tmpdir):
    with local_cluster(cpus_per_node=2) as cluster:
        yield cluster


def _epochs_logged(client: MlflowClient, experiment_id: str) -> int:
    """The most epochs any running trial of the store has logged so far."""
    runs = client.search_runs([experiment_id], "tags.`shrink.kind` = 'trial'")
    return max((len(client.get_metric_history(run.info.run_id, "val_top1")) for run in runs), default=0)


def test_a_restarted_mlflow_server_and_postgres_lose_no_run_and_write_no_point_twice(cluster, tmp_path, capsys):
    artifacts = tmp_path / "artifacts"
    with contextlib.ExitStack() as servers:
        postgres = servers.enter_context(postgres_server())
        first = servers.enter_context(mlflow_server(postgres.uri, artifacts))
        path = digits_sweep(tmp_path, "restarts", seeds="[0]", finetune=f"{{epochs: {EPOCHS}, patience: {EPOCHS}}}",
                            retries="3", tracking_uri=first.url)
        faults: dict[str, float] = {}

        def restart_the_server_then_postgres(sweep_ended):
            client = MlflowClient(first.url)
            while not sweep_ended.is_set() and not client.search_experiments(filter_string="name = 'shrink'"):
                time.sleep(0.1)
            experiment_id = client.get_experiment_by_name("shrink").experiment_id
            while not sweep_ended.is_set() and _epochs_logged(client, experiment_id) < 1:
                time.sleep(0.05)
            faults["mlflow server killed"] = time.time()
            kill_mlflow_server(first)
            servers.enter_context(mlflow_server(postgres.uri, artifacts, port=int(first.url.rsplit(":", 1)[1])))
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

        client = MlflowClient(first.url)
        written = found = twice = 0
        for run in runs:
            assert int(run.data.metrics["epochs_run"]) == EPOCHS
            for key in EPOCH_METRICS:
                steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
                written += EPOCHS
                found += len(set(steps))
                twice += len(steps) - len(set(steps))
                assert sorted(steps) == list(range(1, EPOCHS + 1)), key  # every epoch, exactly once
        every = client.search_runs([runs[0].info.experiment_id], trials_filter(outcome.parent_run_id))
        with capsys.disabled():
            print(f"\nmlflow server killed and restarted ({faults['mlflow server back'] - faults['mlflow server killed']:.1f} s "
                  f"down), then postgres restarted: {len(runs)}/{outcome.total} runs found ({len(every)} in the store); "
                  f"per-epoch metric points written {written}, found {found}, duplicated {twice}")
