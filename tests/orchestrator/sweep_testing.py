"""Helpers for the sweep tests: MLflow queries, a local multi-node cluster, ending processes by PID (sweep
files are ``helpers.digits_sweep``'s)."""

import contextlib
import os
import shutil
from pathlib import Path

from helpers import pids_with_env
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
    working directory named like the trial's folder.
    """
    raylet = str(node.all_processes["raylet"][0].process.pid)
    for pid in pids_with_env("RAY_RAYLET_PID", raylet):
        try:
            folder = Path(os.readlink(f"/proc/{pid}/cwd")).name
        except OSError:
            continue
        if any((storage / folder).glob("checkpoint_*")):
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
