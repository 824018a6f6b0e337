"""Sweeps recorded through a real ``mlflow server`` on a real PostgreSQL, as on the cluster's head.

One PostgreSQL, one MLflow server on it and one Ray cluster (a head without CPUs, two nodes of two
CPUs: 4 trials at once) serve the module. A sweep recorded there must hold every trial run and
every per-epoch metric, report the same tables as the same sweep recorded in SQLite, and lose no
run when a node dies under a trial.
"""

import re
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from shrink.experiment.recording import Status, trial_status, trials_filter
from shrink.experiment.tracking import probe_tracking
from shrink.orchestrator import load_spec, run_sweep
from shrink.report import build_report
from helpers import digits_sweep
from sweep_testing import checkpointed_trial_on, identity, local_cluster, sweep_beside, trial_runs
from tracking_servers import mlflow_server, postgres_server

GRID = sorted((s, c, "0") for s in ("global-magnitude", "random") for c in ("2.0", "4.0"))
EPOCH_METRICS = ("train_loss", "val_top1", "val_top5", "val_loss", "epoch_time_s", "images_per_s")
# Columns of the report's tables that differ between two runs of the same sweep: identifiers, the
# store's address, and timings.
TRIALS_VARYING = {"run_id", "params.tracking_uri", "params.parent_run_id", "params.latency_dir", "wall_time_s", "latency_ms",
                  "dense_latency_ms", "measured_speedup", "measured_speedup_b1"}
SUMMARY_VARYING = re.compile(r"(wall_time_s|measured_speedup)_(mean|std|stderr|ci_low|ci_high)")


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def tracking(postgres, tmp_path_factory):
    """An MLflow server (tracking URI) on PostgreSQL, artifacts in a local folder, for the module."""
    folder = tmp_path_factory.mktemp("tracking")
    with mlflow_server(postgres.uri, folder / "artifacts") as server:
        yield server.url


def test_the_tracking_probe_passes_on_the_server_and_on_databases_with_and_without_mlflows_tables(postgres, tracking):
    import sqlalchemy

    admin = sqlalchemy.create_engine(postgres.uri, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text("CREATE DATABASE empty"))
    admin.dispose()
    empty = postgres.uri.rpartition("/")[0] + "/empty"
    for uri in (tracking, postgres.uri, empty):
        probe_tracking(uri)
    engine = sqlalchemy.create_engine(empty)
    with engine.connect() as connection:
        assert sqlalchemy.inspect(connection).get_table_names() == []  # probed, nothing written
    engine.dispose()


@pytest.fixture(scope="module")
def cluster(ray_tmpdir):
    with local_cluster(cpus_per_node=2) as cluster:
        yield cluster


def _sweep(folder: Path, name: str, tracking_uri: str, epochs: int = 3) -> Path:
    """2 strategies x 2 compressions x 1 seed of small-mlp on digits, recorded at ``tracking_uri``;
    the file and Ray's storage in ``folder``."""
    return digits_sweep(folder, name, seeds="[0]", finetune=f"{{epochs: {epochs}, patience: {epochs}}}", retries="3",
                        tracking_uri=tracking_uri)


def _epoch_points(client: MlflowClient, run) -> dict[str, list[int]]:
    """The steps logged for each per-epoch metric of a run."""
    return {key: [m.step for m in client.get_metric_history(run.info.run_id, key)] for key in EPOCH_METRICS}


def test_a_sweep_through_mlflow_on_postgres_keeps_every_run_and_epoch_and_reports_as_sqlite(
        cluster, tracking, tmp_path, capsys):
    outcome = run_sweep(load_spec(_sweep(tmp_path / "pg", "pg", tracking)), address=cluster.address)

    assert (outcome.total, outcome.finished, outcome.failed, outcome.errored) == (4, 4, 0, 0)
    assert outcome.nodes == 2
    runs = trial_runs(tracking, outcome.parent_run_id)
    assert sorted(identity(run) for run in runs) == GRID
    client = MlflowClient(tracking)
    written = found = 0
    for run in runs:
        assert (run.info.status, trial_status(run)) == ("FINISHED", (Status.FINISHED, None))
        epochs = int(run.data.metrics["epochs_run"])
        assert epochs == 3
        points = _epoch_points(client, run)
        assert points == {key: [1, 2, 3] for key in EPOCH_METRICS}
        written += len(EPOCH_METRICS) * epochs
        found += sum(map(len, points.values()))
        assert {f.path for f in client.list_artifacts(run.info.run_id)} == {"config.json", "layers.csv", "pruning_rounds.json"}
    with capsys.disabled():
        print(f"\npostgres: {len(runs)}/{outcome.total} runs found; per-epoch metric points written {written}, "
              f"found {found}")

    sqlite = f"sqlite:///{tmp_path / 'mlflow.db'}"
    reference = run_sweep(load_spec(_sweep(tmp_path / "sqlite", "pg", sqlite)), address=cluster.address)
    assert reference.finished == 4
    ours = build_report("pg", tracking_uri=tracking, out_dir=tmp_path / "report-pg")
    theirs = build_report("pg", tracking_uri=sqlite, out_dir=tmp_path / "report-sqlite")
    for table, varying in (("trials", TRIALS_VARYING), ("summary", None)):
        a, b = (pd.read_parquet(report.out_dir / f"{table}.parquet") for report in (ours, theirs))
        assert list(a.columns) == list(b.columns)
        same = [c for c in a.columns if (c not in varying if varying else not SUMMARY_VARYING.fullmatch(c))]
        assert len(same) > 20
        pd.testing.assert_frame_equal(a[same], b[same])
        assert len(a) == 4  # trials, and (strategy, compression) groups


def test_killing_a_node_mid_sweep_loses_no_run_and_duplicates_none(cluster, tracking, tmp_path, capsys):
    path = _sweep(tmp_path, "pg-kill", tracking, epochs=10)
    storage = tmp_path / "ray" / "pg-kill"
    killed = []

    def kill_a_node_under_a_checkpointed_trial(sweep_ended):
        while not sweep_ended.is_set() and not killed:
            for node in list(cluster.worker_nodes):
                folder = checkpointed_trial_on(node, storage)
                if folder:
                    cluster.remove_node(node, allow_graceful=False)
                    killed.append(folder)
                    break
            time.sleep(0.05)

    try:
        outcome = sweep_beside(kill_a_node_under_a_checkpointed_trial, path, cluster.address)
    finally:
        if killed:  # two nodes again for whatever runs next (Ray starts nodes from the main thread only)
            cluster.add_node(num_cpus=2)

    assert len(killed) == 1
    assert (outcome.total, outcome.finished, outcome.errored) == (4, 4, 0)
    retried = re.findall(r"\] +(\S+)  retrying   after failure \d, from its epoch \d+ checkpoint$",
                         capsys.readouterr().out, re.M)
    # the node held two trials at once: each was retried; the one found checkpointed is among them
    assert any(killed[0].endswith(label.replace("/", "-")) for label in retried), (killed, retried)
    runs = trial_runs(tracking, outcome.parent_run_id)
    assert sorted(identity(run) for run in runs) == GRID  # 0 lost, none twice
    assert {(run.info.status, trial_status(run)) for run in runs} == {("FINISHED", (Status.FINISHED, None))}
    client = MlflowClient(tracking)
    every = client.search_runs([runs[0].info.experiment_id], trials_filter(outcome.parent_run_id),
                               run_view_type=ViewType.ALL)
    written = found = relogged = 0
    for run in runs:
        epochs = int(run.data.metrics["epochs_run"])
        for key, steps in _epoch_points(client, run).items():
            assert sorted(set(steps)) == list(range(1, epochs + 1)), key  # every epoch, none missing
            written += epochs
            found += len(set(steps))
            relogged += len(steps) - len(set(steps))
    with capsys.disabled():
        print(f"\npostgres, node killed under {killed[0]}: {len(runs)}/{outcome.total} runs found "
              f"({len(every) - len(runs)} superseded, deleted); per-epoch metric points written {written}, "
              f"found {found} (+{relogged} epochs logged again after the resume)")
