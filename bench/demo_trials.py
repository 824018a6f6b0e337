"""Benchmark: compiled steps in the demo sweep's trials (LeNet-300-100 on Fashion-MNIST, 2 fine-tuning
epochs, patience 1, one CPU thread), in one run, the base pretrained once before any timing.

1. One demo trial (global magnitude, 4x, seed 0) end to end as ``shrink trial`` in a fresh process, as a
   sweep's trial starts: eager (``--no-compile``) and compiled (``--compile``) alternating, ``--pairs``
   times each; the compiled side's first process starts from an empty inductor cache (cold), the later
   ones from the cache the first one filled (warm). Prints each run's wall time and the ratios.
2. The trial phase of a reduced demo grid (the demo's 5 strategies x compressions ``--compressions`` x
   seed 0) through ``run_trial`` in this process: before, a dense control per strategy and eager steps;
   after, the sweep's shared dense control and compiled steps as the default rule gives
   (``runtime.compile_default``: off on a CPU, where a third side runs them compiled). Trials of the sides
   alternate, so the compiled side compiles once, in its first trial. Prints the totals and the ratios
   (target: at least 1.4x).

    python bench/demo_trials.py [--pairs 2] [--compressions 1,4] [--pretrain-epochs 6] [--threads 1]
                                [--skip trial|grid]
"""

import argparse
import dataclasses
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's shrink, not an installed one

DATA = "/usr/share/datasets/fashion-mnist"
GRID = """\
name: demo-reduced
dataset: fashion-mnist
data_root: {data}
models: [lenet-300-100]
strategies: [global-magnitude, layer-magnitude, global-gradient, layer-gradient, random]
compressions: [{compressions}]
seeds: [0]
pretrain: {{epochs: {pretrain_epochs}, seed: 0}}
finetune: {{epochs: 2, patience: 1}}
resources: {{cpus: {threads}}}
measure_latency: false
tracking_uri: sqlite:///{folder}/mlflow.db
storage_path: {folder}/ray
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2, help="eager/compiled pairs of the end-to-end trial")
    parser.add_argument("--compressions", default="1,4", help="the reduced grid's compressions")
    parser.add_argument("--pretrain-epochs", type=int, default=6, help="the base's epochs (the demo's: 6)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each trial")
    parser.add_argument("--skip", choices=("trial", "grid"), help="leave out part 1 (trial) or part 2 (grid)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="shrink-bench-", dir="/tmp"))
    os.environ["SHRINK_CACHE"] = str(folder / "cache")
    try:
        run(folder, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, args) -> None:
    from shrink.experiment import ensure_experiment, pretrain
    from shrink.orchestrator import parse_spec
    from shrink.orchestrator.spec import BaseKey

    spec = parse_spec(GRID.format(data=DATA, compressions=", ".join(args.compressions.split(",")), folder=folder,
                                  pretrain_epochs=args.pretrain_epochs, threads=args.threads))
    uri = f"sqlite:///{folder}/mlflow.db"
    ensure_experiment(uri, spec.experiment)
    base = pretrain("lenet-300-100", "fashion-mnist", data_root=DATA, epochs=args.pretrain_epochs, seed=0,
                    threads=args.threads, progress=None)
    if args.skip != "trial":
        one_trial(base.path, uri, folder, args)
    if args.skip != "grid":
        configs = spec.trial_configs({BaseKey("lenet-300-100", 0): base}, tracking_uri=uri, parent_run_id=None)
        trial_phase(configs, spec.strategies)


def one_trial(base: Path, uri: str, folder: Path, args) -> None:
    """Part 1: ``shrink trial`` in fresh processes, eager and compiled alternating."""
    command = [sys.executable, "-m", "shrink", "trial", "--model", "lenet-300-100", "--dataset", "fashion-mnist",
               "--data-root", DATA, "--strategy", "global-magnitude", "--compression", "4", "--epochs", "2",
               "--patience", "1", "--threads", str(args.threads), "--base", str(base), "--tracking-uri", uri,
               "--set", "measure_latency=false"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "TORCHINDUCTOR_CACHE_DIR": str(folder / "inductor-cache")}
    times = {"--no-compile": [], "--compile": []}
    for _ in range(args.pairs):
        for flag, seconds in times.items():
            start = time.perf_counter()
            subprocess.run([*command, flag], env=env, check=True, capture_output=True)
            seconds.append(time.perf_counter() - start)
    eager, compiled = times.values()
    print(f"demo trial (lenet-300-100 on fashion-mnist, global-magnitude x4, 2 epochs, {args.threads} thread), "
          f"`shrink trial` in a fresh process each:")
    print(f"  eager:    {', '.join(f'{s:.1f}' for s in eager)} s")
    print(f"  compiled: {compiled[0]:.1f} s with the inductor cache cold, then "
          f"{', '.join(f'{s:.1f}' for s in compiled[1:])} s warm")
    print(f"ratio eager/compiled demo trial: {compiled_ratio(eager, compiled[:1]):.2f}x cold, "
          f"{compiled_ratio(eager, compiled[1:]):.2f}x warm (above 1: compiled is faster)")


def compiled_ratio(eager: list[float], compiled: list[float]) -> float:
    return (sum(eager) / len(eager)) / (sum(compiled) / len(compiled)) if compiled else float("nan")


def trial_phase(configs: list, strategies: tuple[str, ...]) -> None:
    """Part 2: the reduced grid's trial phase, before (a dense control per strategy, eager) and after (the
    shared dense control, compile as the default rule gives; where that is off, also compiled), their
    trials alternating."""
    from shrink.experiment import run_trial

    before = []
    for config in configs:
        if config.control_for:
            before += [dataclasses.replace(config, strategy=s, control_for=(), compile=False) for s in strategies]
        else:
            before.append(dataclasses.replace(config, compile=False))
    default = configs[0].resolved().compile
    sides = {"before": before, "after": configs}
    if not default:
        sides["after, compiled"] = [dataclasses.replace(config, compile=True) for config in configs]
    totals = dict.fromkeys(sides, 0.0)
    for turn in itertools.zip_longest(*sides.values()):
        for side, config in zip(sides, turn):
            if config is not None:
                start = time.perf_counter()
                run_trial(config)
                totals[side] += time.perf_counter() - start
    print(f"reduced demo grid ({len(strategies)} strategies x compressions "
          f"{sorted({c.compression for c in configs})} x seed 0), in this process:")
    print(f"  before: {len(before)} trials (a dense control per strategy, eager): {totals['before']:.1f} s")
    print(f"  after:  {len(configs)} trials (one shared dense control, compile={default} by the default rule): "
          f"{totals['after']:.1f} s")
    if "after, compiled" in totals:
        print(f"  after, compiled: the same {len(configs)} trials with compile=True (the first one compiles): "
              f"{totals['after, compiled']:.1f} s")
    print(f"ratio before/after demo trial phase: {totals['before'] / totals['after']:.2f}x")
    if "after, compiled" in totals:
        print(f"ratio before/after demo trial phase, compiled: {totals['before'] / totals['after, compiled']:.2f}x")


if __name__ == "__main__":
    main()
