"""Helpers for the sweep tests: tiny digits sweep files, MLflow queries, ending processes by PID."""

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from tracking_servers import free_port  # noqa: F401  (the sweep tests import it from here)

ROOT = Path(__file__).resolve().parents[2]


def digits_sweep(folder: Path, name: str = "tiny", *, strategies: str = "[global-magnitude, random]",
                 seeds: str = "[0, 1]", **extra: str) -> Path:
    """Write a sweep of small-mlp on digits under ``folder``: by default 2 strategies x 2 compressions
    x 2 seeds."""
    lines = [
        f"name: {name}",
        "dataset: digits",
        "models: [small-mlp]",
        f"strategies: {strategies}",
        "compressions: [2, 4]",
        f"seeds: {seeds}",
        "pretrain: {epochs: 3}",
        "finetune: {epochs: 2}",
        f"tracking_uri: sqlite:///{folder / 'mlflow.db'}",
        f"storage_path: {folder / 'ray'}",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


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


def pids_with_env(name: str, value: str) -> list[int]:
    """Processes (of this user) whose environment has ``name=value``."""
    entry = f"{name}={value}".encode()
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry in environ and int(pid) != os.getpid():
            pids.append(int(pid))
    return pids


def end_processes_with_env(name: str, value: str, grace_s: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``, every process started with ``name=value``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = pids_with_env(name, value)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while pids and time.monotonic() < deadline:
            pids = pids_with_env(name, value)
            time.sleep(0.2)
        if not pids:
            return


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
def local_cluster(cpus_per_node: int, nodes: int = 2):
    """A Ray cluster on this machine: a head without CPUs (the driver's) and ``nodes`` nodes for trials."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=cpus_per_node)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()
