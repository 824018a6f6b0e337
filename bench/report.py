"""Benchmark `shrink report` on a large sweep: 10,000 synthetic trial runs in a local MLflow store.

Writes the runs once (per the trial-run schema of docs/ARCHITECTURE.md; the writing time is
printed but is not part of the target) and keeps the store for later runs, then times reading,
aggregating and plotting separately. Target: under 30 s in total on a 2-core machine.

Baselines measured in the same run: MLflow's search with the garbage collector left on (what
``shrink.report.runs`` avoids), and the same params, tags and final metrics read with plain SQL
from the sqlite file, which bounds what any MLflow-based reader could gain.

Usage: python bench/report.py [--runs 10000] [--store shrink-out/bench/report-10000.db]
"""

import argparse
import gc
import json
import math
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from shrink.report.aggregate import dense_controls, summarize
from shrink.report.build import build_report
from shrink.report.checklist import run_checklist
from shrink.report.files import write_parquet
from shrink.report.plots import plot_sweep
from shrink.report.runs import PAGE_SIZE, fetch_trial_runs, find_sweep, trials_frame

MODELS = ("small-mlp", "small-cnn", "lenet-300-100", "lenet-5")
STRATEGIES = {"global-magnitude": 0.01, "layer-magnitude": 0.015, "global-gradient": 0.012,
              "layer-gradient": 0.02, "random": 0.05}
COMPRESSIONS = tuple(2**k for k in range(10))  # 1 .. 512
SWEEP = "bench"


def grid(runs: int):
    """(model, strategy, compression, seed) for ``runs`` trials: 4 x 5 x 10 x runs/200 seeds."""
    seeds = math.ceil(runs / (len(MODELS) * len(STRATEGIES) * len(COMPRESSIONS)))
    cells = [(m, s, c, seed) for m in MODELS for s in STRATEGIES for c in COMPRESSIONS for seed in range(seeds)]
    return cells[:runs]


def write_store(store: Path, runs: int) -> float:
    """Write the sweep (a parent run and ``runs`` finished trial runs) to the sqlite file
    ``store``; returns seconds taken. The file is built in memory-backed /dev/shm when there is
    one (each MLflow call is a transaction: on disk, syncs dominate) and then moved into place."""
    staging = Path("/dev/shm") if Path("/dev/shm").is_dir() else store.parent
    draft = Path(tempfile.mkdtemp(dir=staging)) / store.name
    client = MlflowClient(tracking_uri=f"sqlite:///{draft}")
    artifacts = store.parent / "artifacts"
    experiment = client.create_experiment("shrink", artifact_location=artifacts.as_uri())
    parent = client.create_run(experiment, tags={"shrink.kind": "sweep", "shrink.sweep": SWEEP}).info.run_id
    rng = random.Random(0)
    start = time.perf_counter()
    for i, (model, strategy, compression, seed) in enumerate(grid(runs)):
        dense = 0.9 + 0.001 * MODELS.index(model)
        top1 = max(0.1, dense - STRATEGIES[strategy] * math.log2(compression) ** 1.5 + rng.gauss(0, 0.005))
        tags = {
            "mlflow.parentRunId": parent, "shrink.kind": "trial", "shrink.status": "finished",
            "shrink.sweep": SWEEP, "shrink.base_sha256": f"{MODELS.index(model):064x}",
            "shrink.split_hash": "0" * 16, "shrink.git_commit": "0" * 40,
            "shrink.versions": json.dumps({"torch": "2.15.0", "mlflow": "3.17.2"}),
            "shrink.device": "cpu", "shrink.hardware": "bench CPU",
        }
        params = {
            "model": model, "dataset": "fashion-mnist", "strategy": strategy,
            "compression": str(compression), "seed": str(seed), "data_root": "", "val_fraction": "0.1",
            "split_seed": "0", "base_path": "/cache/base.pt", "base_sha256": tags["shrink.base_sha256"],
            "prune_batch_size": "256", "prune_classifier": "False", "device": "cpu", "threads": "1",
            "deterministic": "False", "amp": "False", "tracking_uri": f"sqlite:///{store}", "experiment_name": "shrink",
            "parent_run_id": parent, "sweep": SWEEP,
            **{f"finetune.{k}": v for k, v in (("optimizer", "adam"), ("lr", "0.0003"), ("batch_size", "64"),
                                               ("epochs", "2"), ("momentum", "0.9"), ("nesterov", "False"),
                                               ("weight_decay", "0"), ("patience", "1"), ("min_delta", "0"))},
        }
        metrics = {
            "dense_val_top1": dense, "dense_val_top5": 0.99, "dense_test_top1": dense,
            "dense_test_top5": 0.99, "pruned_val_top1": top1 - 0.05, "pruned_val_top5": 0.95,
            "test_top1": top1, "test_top5": 0.97, "test_loss": 1 - top1, "delta_top1": top1 - dense,
            "delta_top5": -0.02, "size": 79510, "nonzero_size": 79510 / compression,
            "compression_ratio": compression, "macs": 79400, "nonzero_macs": 79400 / compression,
            "theoretical_speedup": compression, "epochs_run": 2, "best_epoch": 1, "stopped_early": 0,
            "wall_time_s": 3.0 + rng.random(),
        }
        run = client.create_run(experiment, tags=tags).info.run_id
        client.log_batch(run, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()],
                         params=[Param(k, v) for k, v in params.items()])
        client.set_terminated(run)
        if (i + 1) % 1000 == 0:
            print(f"  wrote {i + 1}/{runs} runs ({time.perf_counter() - start:.0f} s)", flush=True)
    client.set_terminated(parent)
    shutil.move(draft, store)
    draft.parent.rmdir()
    return time.perf_counter() - start


def sql_read(path: Path, parent: str) -> tuple[float, int]:
    """Seconds to read the trials' params, tags and latest metrics with plain SQL; row count."""
    start = time.perf_counter()
    db = sqlite3.connect(path)
    ids = [r[0] for r in db.execute(
        "SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId' AND value = ?", (parent,))]
    rows = {i: {} for i in ids}
    db.execute("CREATE TEMP TABLE ids (id TEXT PRIMARY KEY)")
    db.executemany("INSERT INTO ids VALUES (?)", [(i,) for i in ids])
    for table, value in (("params", "value"), ("tags", "value"), ("latest_metrics", "value")):
        for run, key, v in db.execute(f"SELECT run_uuid, key, {value} FROM {table} JOIN ids ON run_uuid = id"):
            rows[run][key] = v
    db.close()
    return time.perf_counter() - start, len(rows)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--store", type=Path, help="sqlite file kept between runs "
                        "[default: shrink-out/bench/report-<runs>.db]")
    args = parser.parse_args()
    store = (args.store or Path("shrink-out") / "bench" / f"report-{args.runs}.db").resolve()
    uri = f"sqlite:///{store}"
    if store.exists():
        print(f"reusing {store}")
    else:
        store.parent.mkdir(parents=True, exist_ok=True)
        print(f"writing {args.runs} synthetic trial runs to {store} (not part of the target)")
        print(f"write: {write_store(store, args.runs):.1f} s")

    sweep, t_find = timed(lambda: find_sweep(uri, SWEEP))
    runs, t_search = timed(lambda: fetch_trial_runs(sweep))
    if len(runs) != args.runs:
        sys.exit(f"{store} holds {len(runs)} trial runs, not {args.runs}: delete it or pass --store")
    trials, t_frame = timed(lambda: trials_frame(runs))
    t_read = t_find + t_search + t_frame

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def aggregate():
            summary, controls = summarize(trials), dense_controls(trials)
            run_checklist(trials)
            write_parquet(trials, out / "trials.parquet")
            write_parquet(summary, out / "summary.parquet")
            return summary, controls

        (summary, controls), t_aggregate = timed(aggregate)
        figures, t_plot = timed(lambda: plot_sweep(summary, controls, out))
        _, t_report = timed(lambda: build_report(SWEEP, tracking_uri=uri, out_dir=out / "report"))

    def search_with_gc():
        client = MlflowClient(tracking_uri=uri)
        found, token = 0, None
        while True:
            page = client.search_runs([sweep.experiment_id], f"tags.mlflow.parentRunId = '{sweep.run_id}'",
                                      max_results=PAGE_SIZE, page_token=token)
            found, token = found + len(page), page.token
            if not token:
                return found

    gc.collect()
    _, t_gc_on = timed(search_with_gc)
    (t_sql, n_sql) = sql_read(store, sweep.run_id)
    assert n_sql == args.runs

    total = t_read + t_aggregate + t_plot
    print(f"\n{args.runs} trial runs, {len(summary)} summary rows, {len(figures)} figure files")
    print(f"read      {t_read:6.2f} s  (find sweep {t_find:.2f}, MLflow search {t_search:.2f}, "
          f"DataFrame {t_frame:.2f})")
    print(f"aggregate {t_aggregate:6.2f} s  (summary, dense controls, checklist, 2 Parquet writes)")
    print(f"plot      {t_plot:6.2f} s  ({len(figures) // 2} figures, PNG + SVG)")
    print(f"total     {total:6.2f} s  (target < 30 s: {'met' if total < 30 else 'MISSED'})")
    print(f"whole `shrink report` (adds report.md and artifact logging): {t_report:.2f} s")
    print(f"\nMLflow search is {t_search / total:.0%} of the total.")
    print(f"  with the garbage collector on (MLflow's default): {t_gc_on:.2f} s, "
          f"{t_gc_on / t_search:.1f}x the paused search")
    print(f"  plain SQL read of the same params/tags/metrics:   {t_sql:.2f} s, "
          f"MLflow search is {t_search / t_sql:.0f}x slower")


if __name__ == "__main__":
    main()
