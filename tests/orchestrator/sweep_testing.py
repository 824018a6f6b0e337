"""Helpers for the sweep tests: MLflow queries, a local multi-node cluster, ending processes by PID (sweep
files are ``helpers.digits_sweep``'s)."""

import contextlib
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from helpers import pids_with_env
from shrink.orchestrator.trainable import STATUS
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]


def shrink_checkout(folder: Path) -> Path:
    """A user's working directory for a cluster job: a copy of this checkout's ``shrink`` package."""
    shutil.copytree(ROOT / "shrink", folder / "shrink", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def trial_runs(tracking_uri: str, parent_run_id: str) -> list:
    """The MLflow runs nested under a sweep's parent run."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("shrink")
    return client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


def identity(run) -> tuple[str, str, str]:
    """(strategy, compression, seed) of a trial run, as MLflow stores the params."""
    return run.data.params["strategy"], run.data.params["compression"], run.data.params["seed"]


def sweep_runs(tracking_uri: str) -> list:
    """The parent runs of every sweep in the store."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("shrink")
    return client.search_runs([experiment.experiment_id], "tags.`shrink.kind` = 'sweep'")


def checkpointed_trial_on(node, storage: Path) -> str | None:
    """The folder of a trial that a worker of ``node`` is training and has checkpointed, if any.

    A node's workers carry its raylet's PID in their environment, and Tune runs each trial in a
    working directory named like the trial's folder. A trial whose last report is in (its ``result.json``
    holds ``shrink_status``) is done, though its actor may still wait there for the next trial.
    """
    raylet = str(node.all_processes["raylet"][0].process.pid)
    for pid in pids_with_env("RAY_RAYLET_PID", raylet):
        try:
            folder = Path(os.readlink(f"/proc/{pid}/cwd")).name
        except OSError:
            continue
        results = storage / folder / "result.json"
        done = results.is_file() and f'"{STATUS}"' in results.read_text()
        if any((storage / folder).glob("checkpoint_*")) and not done:
            return folder
    return None


@contextlib.contextmanager
def local_cluster(cpus_per_node: int, nodes: int = 2, gpus_per_node: int = 0):
    """A Ray cluster on this machine: a head without CPUs (the driver's) and ``nodes`` nodes for trials
    (with ``gpus_per_node``, GPUs that Ray counts and torch here cannot reach)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=cpus_per_node, num_gpus=gpus_per_node)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def sweep_beside(act: Callable[[threading.Event], None], path: Path, address: str):
    """``run_sweep`` of the file at ``path`` on the cluster at ``address`` while ``act(ended)`` runs in a thread
    (``ended`` is set once the sweep returns or fails); the sweep's outcome, once ``act`` has returned too."""
    from shrink.orchestrator import load_spec, run_sweep

    ended = threading.Event()
    thread = threading.Thread(target=act, args=(ended,), daemon=True)
    thread.start()
    try:
        return run_sweep(load_spec(path), address=address)
    finally:
        ended.set()
        thread.join()
