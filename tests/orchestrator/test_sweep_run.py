"""Sweeps of real digits trials on a Ray cluster of simulated nodes (``ray.cluster_utils.Cluster``).

One cluster serves the module: a head with no CPUs (so that every trial runs on a worker node) and
two worker nodes of one CPU each; the node-removal test adds and removes a third.
"""

import json
import re
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from shrink.orchestrator import load_spec, run_sweep
from shrink.report.runs import trials_frame
from helpers import digits_sweep
from sweep_testing import checkpointed_trial_on, identity, local_cluster, sweep_runs, trial_runs

# small-mlp on 1x8x8 digits: 64x100 + 100 and 100x10 + 10 parameters.
SIZE = 7510
# nonzero = round(SIZE / compression), halves up: 3755 at 2x, 1877.5 -> 1878 at 4x.
NONZERO = {1.0: SIZE, 2.0: 3755, 4.0: 1878}
STRATEGIES = ("global-magnitude", "random")
GRID = sorted((s, c, seed) for s in STRATEGIES for c in ("2.0", "4.0") for seed in ("0", "1"))


@pytest.fixture(scope="module")
def cluster(ray_tmpdir):
    with local_cluster(cpus_per_node=1) as cluster:
        yield cluster


def test_grid_sweep_records_every_trial_as_a_child_run_in_mlflow(cluster, tmp_path, capsys):
    # 2 strategies x compressions 1 and 2 x 2 seeds: 8 grid points, 6 trials (one dense control per seed).
    path = digits_sweep(tmp_path, compressions="[1, 2]")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outcome = run_sweep(load_spec(path), address=cluster.address)

    assert (outcome.total, outcome.finished, outcome.failed, outcome.errored) == (6, 6, 0, 0)
    assert outcome.nodes == 2
    assert "6/6 done: 6 finished, 0 failed | 0 running | 0 pending" in capsys.readouterr().out

    [parent] = sweep_runs(uri)
    assert parent.info.run_id == outcome.parent_run_id
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["shrink.sweep"] == "tiny"
    spec_copy = MlflowClient(uri).download_artifacts(parent.info.run_id, "sweep.yaml", str(tmp_path))
    assert Path(spec_copy).read_text() == path.read_text()

    runs = trial_runs(uri, parent.info.run_id)
    grid = sorted((s, c, seed) for s in STRATEGIES for c in ("1.0", "2.0") for seed in ("0", "1"))
    assert sorted(identity(run) for run in runs) == [point for point in grid if point[:2] != ("random", "1.0")]
    controls = {run.data.params["seed"]: run for run in runs if run.data.params["compression"] == "1.0"}
    assert {seed: json.loads(run.data.params["control_for"]) for seed, run in controls.items()} == {
        "0": list(STRATEGIES), "1": list(STRATEGIES)}
    assert sorted(run.info.run_name for run in controls.values()) == ["dense-control x1 s0 small-mlp",
                                                                       "dense-control x1 s1 small-mlp"]
    # The report counts each control for both strategies: a row per grid point.
    rows = trials_frame(runs)
    assert sorted(zip(rows["strategy"], rows["compression"].map(str), rows["seed"].map(str))) == grid
    assert sorted(rows[rows["compression"] == 1]["run_id"]) == sorted(2 * [run.info.run_id for run in controls.values()])
    bases = {run.data.tags["shrink.base_sha256"] for run in runs}
    assert len(bases) == 1
    client = MlflowClient(uri)
    for run in runs:
        params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
        assert run.info.status == "FINISHED"
        assert (tags["shrink.kind"], tags["shrink.status"], tags["shrink.sweep"]) == ("trial", "finished", "tiny")
        assert (params["model"], params["dataset"], params["finetune.epochs"]) == ("small-mlp", "digits", "2")
        assert (params["device"], params["threads"], params["parent_run_id"]) == ("cpu", "1", parent.info.run_id)
        assert params["base_sha256"] == tags["shrink.base_sha256"]
        assert metrics["size"] == SIZE
        assert metrics["nonzero_size"] == NONZERO[float(params["compression"])]
        assert metrics["compression_ratio"] == pytest.approx(SIZE / metrics["nonzero_size"])
        assert 0.5 < metrics["test_top1"] <= 1
        history = client.get_metric_history(run.info.run_id, "val_top1")
        assert [m.step for m in history] == list(range(1, int(metrics["epochs_run"]) + 1))
    # Speedups were timed after every trial had ended (two ran at a time), one pair after another.
    windows = sorted(tuple(map(float, run.data.tags["shrink.latency_window"].split())) for run in runs)
    assert all(run.data.params["latency.phase"] == "exclusive" and run.data.params["latency.amp"] == "off"
               and run.data.metrics["measured_speedup"] > 0 for run in runs)
    assert windows[0][0] >= max(run.info.end_time for run in runs) / 1000
    assert all(end <= start for (_, end), (start, _) in zip(windows, windows[1:])), windows
    assert list((tmp_path / "ray" / "tiny" / "latency").rglob("*.pt")) == []
    # Every epoch checkpointed; once the experiment state named the last, the older ones were deleted.
    trial_folders = [folder for folder in (tmp_path / "ray" / "tiny").iterdir() if folder.is_dir()
                     and folder.name != "latency"]
    assert len(trial_folders) == 6
    assert all(len(list(folder.glob("checkpoint_*"))) == 1 for folder in trial_folders)


def test_a_diverging_trial_is_recorded_failed_and_not_retried(cluster, tmp_path):
    path = digits_sweep(tmp_path, name="boom", retries="2")
    text = path.read_text().replace("strategies: [global-magnitude, random]", "strategies: [random]")
    text = text.replace("compressions: [2, 4]", "compressions: [2]").replace("seeds: [0, 1]", "seeds: [0]")
    path.write_text(text.replace("finetune: {epochs: 2}", "finetune: {epochs: 2, optimizer: sgd, lr: 1.0e+30}"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    outcome = run_sweep(load_spec(path), address=cluster.address)

    assert (outcome.total, outcome.finished, outcome.failed, outcome.errored) == (1, 0, 1, 0)
    [parent] = sweep_runs(uri)
    assert parent.info.status == "FINISHED"
    [run] = trial_runs(uri, parent.info.run_id)  # one run: not retried
    assert run.info.status == "FAILED"
    assert run.data.tags["shrink.status"] == "failed"
    assert run.data.tags["shrink.failure"].startswith("TrialDiverged: epoch 1:")


def test_removing_a_node_mid_sweep_loses_no_trial(cluster, tmp_path, capsys):
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    path = digits_sweep(tmp_path, name="survivor", retries="3")
    path.write_text(path.read_text().replace("finetune: {epochs: 2}", "finetune: {epochs: 20, patience: 20}"))
    storage = tmp_path / "ray" / "survivor"
    interrupted = []

    def remove_the_node_under_a_checkpointed_trial():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not interrupted:
            folder = checkpointed_trial_on(doomed, storage)
            if folder:
                cluster.remove_node(doomed, allow_graceful=False)
                interrupted.append(folder)
            time.sleep(0.05)

    remover = threading.Thread(target=remove_the_node_under_a_checkpointed_trial, daemon=True)
    remover.start()
    outcome = run_sweep(load_spec(path), address=cluster.address)
    remover.join()

    assert len(interrupted) == 1
    assert (outcome.total, outcome.finished, outcome.errored) == (8, 8, 0)
    assert outcome.nodes >= 2
    [retried] = re.findall(r"\] +(\S+)  retrying   after failure 1, from its epoch \d+ checkpoint$",
                           capsys.readouterr().out, re.M)
    assert interrupted[0].endswith(retried.replace("/", "-"))  # the trial on the removed node
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = trial_runs(uri, outcome.parent_run_id)
    assert sorted(identity(run) for run in runs) == GRID  # the retried trial continued its own run
    assert {run.data.tags["shrink.status"] for run in runs} == {"finished"}
