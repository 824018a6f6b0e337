"""Benchmark: the same 16 tiny trials (small-mlp on digits: 4 strategies x 2 compressions x 2 seeds)
through ``shrink sweep`` (``run_sweep`` on a local Ray) and through a plain serial loop of
``run_trial``, in one run. Every trial uses one CPU thread, the sweep's setting, so the work per
trial is the same on both sides; the base is pretrained once, before any timing.

Printed:
- the serial loop's wall time and its median time per trial;
- the sweep with one trial at a time: Ray start-up, the trials' wall time, and the per-trial
  overhead at steady state: the median interval between the starts of consecutive trials (their
  MLflow runs) minus the serial loop's median trial time. Target: under 1 second;
- the sweep with one trial per CPU: Ray start-up, the trials' wall time, and the parallel speedup
  (serial wall time / the sweep's trials wall time, and with Ray start-up included), and at steady
  state (the serial median trial time / the mean interval between trial starts once every CPU is
  busy).

    python bench/sweep.py [--epochs 20]
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

GRID = """\
name: {name}
dataset: digits
models: [small-mlp]
strategies: [global-magnitude, layer-magnitude, global-gradient, random]
compressions: [2, 4]
seeds: [0, 1]
pretrain: {{epochs: 5}}
finetune: {{epochs: {epochs}, patience: {epochs}}}
resources: {{cpus: 1}}
max_concurrent_trials: {concurrency}
tracking_uri: sqlite:///{folder}/mlflow.db
storage_path: {folder}/ray
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20, help="fine-tuning epochs per trial")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="shrink-bench-", dir="/tmp"))
    os.environ["SHRINK_CACHE"] = str(folder / "cache")
    os.environ["RAY_TMPDIR"] = str(folder)
    try:
        run(folder, args.epochs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, epochs: int) -> None:
    from shrink.experiment import ensure_experiment, pretrain, run_trial
    from shrink.orchestrator import parse_spec, run_sweep
    from shrink.orchestrator.spec import BaseKey, local_resources

    cpus = int(local_resources()["CPU"])

    def spec(name: str, concurrency: int):
        return parse_spec(GRID.format(name=name, epochs=epochs, concurrency=concurrency, folder=folder))

    serial = spec("serial", 1)
    uri = f"sqlite:///{folder}/mlflow.db"
    ensure_experiment(uri, serial.experiment)
    base = pretrain("small-mlp", "digits", epochs=serial.base_settings[0].epochs, progress=None)
    configs = serial.trial_configs({BaseKey("small-mlp", 0): base}, tracking_uri=uri, parent_run_id=None)
    print(f"{len(configs)} trials of small-mlp on digits ({epochs} fine-tuning epochs each), {cpus} CPUs")

    times = []
    for config in configs:
        started = time.perf_counter()
        run_trial(config)
        times.append(time.perf_counter() - started)
    serial_s, serial_trial_s = sum(times), statistics.median(times)
    print(f"serial loop of run_trial:  {serial_s:6.1f} s  (median trial {serial_trial_s:.2f} s)")

    one = run_sweep(spec("one-at-a-time", 1))
    period = statistics.median(start_intervals(uri, one.parent_run_id))
    print(f"shrink sweep, 1 at a time: {one.tune_s:6.1f} s  (Ray start {one.ray_start_s:.1f} s; one trial every "
          f"{period:.2f} s: per-trial overhead at steady state {period - serial_trial_s:+.2f} s, target < 1 s)")

    many = run_sweep(spec("all-cores", cpus))
    intervals = start_intervals(uri, many.parent_run_id)[cpus - 1:]  # once every CPU is busy
    period = sum(intervals) / len(intervals)
    print(f"shrink sweep, {cpus} at a time: {many.tune_s:6.1f} s  (Ray start {many.ray_start_s:.1f} s; speedup over "
          f"the serial loop {serial_s / many.tune_s:.2f}x, {serial_s / (many.tune_s + many.ray_start_s):.2f}x with "
          f"Ray start; at steady state one trial every {period:.2f} s, {serial_trial_s / period:.2f}x the serial rate)")
    if not one.finished == many.finished == len(configs):
        raise SystemExit("not every trial finished: the figures above are not comparable")


def start_intervals(uri: str, parent_run_id: str) -> list[float]:
    """Intervals between the starts of a sweep's consecutive trials (their MLflow runs), in seconds."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("shrink").experiment_id],
                              f"tags.`mlflow.parentRunId` = '{parent_run_id}'")
    starts = sorted(run.info.start_time / 1000 for run in runs)
    return [b - a for a, b in zip(starts, starts[1:])]

if __name__ == "__main__":
    main()
