"""Sweeps written straight to MLflow per the schema of docs/ARCHITECTURE.md, with chosen numbers.

A sweep is a parent run (``shrink.kind=sweep``) with trial runs nested under it; every trial
carries the params, tags and final metrics a real trial records, so the expected tables can be
computed by hand.
"""

import json
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunData, RunInfo, RunTag

from shrink.experiment.recording import Tag
from shrink.report.runs import trials_frame

DENSE_TOP1, DENSE_TOP5 = 0.98, 0.999
BASE = "ab" * 32


def trial(strategy, compression, seed, top1, *, failure=None, dataset="mnist",
          model="lenet-300-100", base=BASE, dense=DENSE_TOP1, **metrics):
    """One trial's params, tags and final metrics; ``metrics`` overrides derived values."""
    finished = failure is None
    speedup = 1 + 0.8 * (compression - 1)
    values = {
        "dense_val_top1": dense - 0.01, "dense_val_top5": DENSE_TOP5,
        "dense_test_top1": dense, "dense_test_top5": DENSE_TOP5,
        "pruned_val_top1": top1 - 0.1, "pruned_val_top5": 0.9,
        "test_top1": top1, "test_top5": 0.99, "test_loss": 1 - top1,
        "delta_top1": top1 - dense, "delta_top5": 0.99 - DENSE_TOP5,
        "size": 266_610, "nonzero_size": 266_610 / compression,
        "compression_ratio": compression, "macs": 266_200,
        "nonzero_macs": 266_200 / speedup, "theoretical_speedup": speedup,
        "epochs_run": 3, "best_epoch": 2, "stopped_early": 0, "wall_time_s": 10.0 + seed,
    } | metrics
    if not finished:
        values = {k: values[k] for k in ("dense_val_top1", "dense_test_top1", "dense_test_top5")}
    tags = {
        "shrink.kind": "trial", "shrink.status": "finished" if finished else "failed",
        "shrink.base_sha256": base, "shrink.split_hash": "split01",
        "shrink.git_commit": "c0ffee", "shrink.versions": json.dumps({"torch": "2.15.0", "mlflow": "3.17.2"}),
        "shrink.device": "cpu", "shrink.hardware": "2-core test CPU", "shrink.amp": "off",
        "shrink.channels_last": "0",
    }
    if failure:
        tags["shrink.failure"] = failure
    params = {"model": model, "dataset": dataset, "strategy": strategy,
              "compression": str(compression), "seed": str(seed),
              "finetune.optimizer": "adam", "finetune.lr": "0.0003", "finetune.epochs": "3"}
    return {"params": params, "tags": tags, "metrics": values}


def write_sweep(uri, name, trials, *, experiment="shrink", methods=None):
    """Write a sweep parent run and its trial runs; returns the parent run id. ``methods`` (a list)
    is recorded as the sweep's proposed methods; None records none, as sweeps did before.

    The experiment keeps its artifacts beside the sqlite file, not under the working directory.
    """
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    artifacts = Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
    experiment_id = (found.experiment_id if found
                     else client.create_experiment(experiment, artifact_location=artifacts.as_uri()))
    tags = {"shrink.kind": "sweep", "shrink.sweep": name}
    if methods is not None:
        tags[Tag.METHODS] = json.dumps(methods)
    parent = client.create_run(experiment_id, tags=tags)
    parent_id = parent.info.run_id
    for t in trials:
        tags = t["tags"] | {"mlflow.parentRunId": parent_id, "shrink.sweep": name}
        run = client.create_run(experiment_id, tags=tags)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, float(v), 0, 0) for k, v in t["metrics"].items()],
            params=[Param(k, v) for k, v in t["params"].items()],
        )
        status = "FAILED" if t["tags"].get("shrink.status") == "failed" else "FINISHED"
        client.set_terminated(run.info.run_id, status)
    client.set_terminated(parent_id)
    return parent_id


def table(trials):
    """The per-trial table of ``trials`` built in memory (MLflow run entities, no store)."""
    runs = []
    for i, t in enumerate(trials):
        status = "FAILED" if t["tags"].get("shrink.status") == "failed" else "FINISHED"
        info = RunInfo(f"run{i:04d}", "1", "test", status, 0, 1, "active")
        data = RunData(
            metrics=[Metric(k, float(v), 0, 0) for k, v in t["metrics"].items()],
            params=[Param(k, v) for k, v in t["params"].items()],
            tags=[RunTag(k, v) for k, v in t["tags"].items()],
        )
        runs.append(Run(info, data))
    return trials_frame(runs)


# Hand-chosen test top-1 per (strategy, compression) over seeds 0, 1, 2.
TOP1 = {
    ("global-magnitude", 1): (0.98, 0.98, 0.98),
    ("global-magnitude", 2): (0.95, 0.96, 0.97),
    ("global-magnitude", 4): (0.90, 0.92, 0.97),
    ("random", 1): (0.98, 0.98, 0.98),
    ("random", 2): (0.80, 0.84, 0.82),
    ("random", 4): (0.50, 0.70, 0.60),
}
FAILURE = "loss became nan at epoch 2"


def small_sweep():
    """2 strategies x 3 compressions x 3 seeds, plus one failed trial (random, 4x, seed 3)."""
    trials = [trial(s, c, seed, top1) for (s, c), values in TOP1.items() for seed, top1 in enumerate(values)]
    return trials + [trial("random", 4, 3, 0.0, failure=FAILURE)]
