"""Data-parallel trials: a sweep whose trial runs on 2 Ray Train workers (DDP over gloo on CPUs), its
equivalence with one process, a worker killed mid-trial, and the bad inputs."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from shrink.orchestrator import SpecError, load_spec, parse_spec, run_sweep
from shrink.orchestrator.spec import check_resources
from helpers import digits_sweep, digits_sweep_text
from helpers import pids_with_env
from sweep_testing import sweep_runs, trial_runs

# digits: 1,797 images, a fixed test set of 359, the other 1,438 carved into 1,293 train and 145 val.
TRAIN, VAL, TEST = 1293, 145, 359
NONZERO_4X = 1878  # small-mlp on digits (7,510 parameters) at 4x: round(7510 / 4), halves up


def ddp_sweep(folder: Path, name: str, finetune: str, **extra: str) -> Path:
    """One small-mlp trial (no BatchNorm) on digits on 2 workers of 1 CPU each."""
    return digits_sweep(folder, name, strategies="[global-magnitude]", compressions="[4]", seeds="[0]",
                        finetune=finetune, resources="{workers: 2, cpus: 1}", **extra)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHRINK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def the_trial_run(folder: Path):
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    [parent] = sweep_runs(uri)
    runs = trial_runs(uri, parent.info.run_id)
    assert len(runs) == 1
    return runs[0]


def test_two_worker_trial_records_one_exact_run_and_matches_one_process_weights(ray_tmpdir, tmp_path, cache):
    from shrink.experiment import DirectoryCheckpointer, TrialConfig, run_trial

    outcome = run_sweep(load_spec(ddp_sweep(tmp_path, "pair", "{epochs: 1, batch_size: 64}")))

    assert (outcome.total, outcome.finished, outcome.errored) == (1, 1, 0)
    run = the_trial_run(tmp_path)
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert (run.info.status, tags["shrink.status"], tags["shrink.workers"], params["workers"]) == (
        "FINISHED", "finished", "2", "2")
    assert metrics["nonzero_size"] == NONZERO_4X  # the masks held exactly through DDP fine-tuning
    assert (metrics["val_n"], metrics["test_n"]) == (VAL, TEST)  # every example once, none padded in
    assert metrics["epochs_run"] == 1

    # The same trial in one process at the same global batch: DDP averages the two halves' gradients,
    # so after one epoch (20 Adam steps) the weights agree up to float summation order.
    [saved] = (tmp_path / "ray" / "pair" / "train").glob("*/checkpoint_*/trial.pt")
    ddp = torch.load(saved, weights_only=True)
    single_dir = tmp_path / "single"
    config = TrialConfig.from_dict({
        "model": "small-mlp", "dataset": "digits", "strategy": "global-magnitude", "compression": 4.0,
        "base_path": params["base_path"], "finetune": {"epochs": 1, "batch_size": 64}, "threads": 1,
        "tracking_uri": f"sqlite:///{tmp_path / 'single.db'}"})
    single = run_trial(config, checkpointer=DirectoryCheckpointer(single_dir))
    alone = DirectoryCheckpointer(single_dir).load()
    assert ddp["model"].keys() == alone["model"].keys()
    for key, value in alone["model"].items():
        if value.dtype == torch.bool:
            assert torch.equal(ddp["model"][key], value), key
        else:
            assert torch.allclose(ddp["model"][key], value, rtol=1e-5, atol=1e-6), key
    assert single["nonzero_size"] == NONZERO_4X


def test_a_killed_worker_resumes_the_trial_from_its_checkpoint_in_the_same_run(ray_tmpdir, tmp_path, cache):
    # An iterative schedule (pruning again after epoch 20) also runs on both ranks, and across the restart.
    path = ddp_sweep(tmp_path, "phoenix", "{epochs: 40, patience: 40, batch_size: 64}", schedule="iterative",
                     schedule_rounds="2")
    train_storage = tmp_path / "ray" / "phoenix" / "train"
    killed = {}

    def kill_a_worker_after_the_first_checkpoint():
        # Ray Train has registered a checkpoint once its snapshot is in storage (a checkpoint folder alone
        # may not be registered yet: a kill then would rightly start the trial over).
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and not list(train_storage.glob("*/checkpoint_manager_snapshot.json")):
            time.sleep(0.2)
        workers = [pid for pid in pids_with_env("RAY_TMPDIR", ray_tmpdir) if b"RayTrainWorker" in _cmdline(pid)]
        if workers:
            killed["at_ms"] = time.time() * 1000
            killed["pid"] = workers[-1]
            os.kill(workers[-1], signal.SIGKILL)

    killer = threading.Thread(target=kill_a_worker_after_the_first_checkpoint, daemon=True)
    killer.start()
    outcome = run_sweep(load_spec(path))
    killer.join(timeout=5)

    assert "pid" in killed, "no Ray Train worker was found to kill"
    assert (outcome.total, outcome.finished, outcome.errored) == (1, 1, 0)
    run = the_trial_run(tmp_path)
    assert run.data.tags["shrink.status"] == "finished"
    assert run.info.start_time < killed["at_ms"]  # the run opened before the kill is the one that finished
    assert run.data.metrics["epochs_run"] == 40
    assert run.data.metrics["nonzero_size"] == NONZERO_4X


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


SPEC = digits_sweep_text("bad", strategies="[global-magnitude]", compressions="[4]", seeds="[0]", pretrain=None,
                         finetune=None)


@pytest.mark.parametrize("extra, message", [
    ("resources: {workers: 0}", "bad: resources.workers: 0 is not a number of workers: a whole number >= 1"),
    ("resources: {workers: 3}\nfinetune: {batch_size: 64}",
     "bad: finetune.batch_size 64 is not divisible by workers 3: the global batch is split evenly over the "
     "workers; give a multiple of 3"),
    ("resources: {workers: 3}",  # the digits preset's batch of 64
     "bad: finetune.batch_size 64 is not divisible by workers 3: the global batch"),
    ("resources: {workers: 2, gpus: 0.5}", "bad: resources.gpus: 0.5: each of several workers needs whole GPUs"),
])
def test_bad_worker_settings_fail_with_one_line(extra, message):
    with pytest.raises(SpecError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(SPEC + extra, origin="bad")


def test_more_workers_than_the_cluster_can_place_fail_before_anything_starts():
    spec = parse_spec(SPEC + "resources: {workers: 4, cpus: 2}")
    nodes = [{"CPU": 4.0}, {"CPU": 3.0}, {"CPU": 1.0}]  # 8 CPUs in all, but room for 2 + 1 + 0 workers
    with pytest.raises(SpecError, match=r"^resources.workers: a trial asks for 4 workers of 2 CPUs and 0 GPUs "
                                        r"each, but the cluster can place at most 3 of them \(8 CPUs, 0 GPUs on 3 "
                                        r"node\(s\)\); ask for at most 3 workers"):
        check_resources(spec, {"CPU": 8.0, "GPU": 0.0}, "the cluster", nodes)
    check_resources(spec, {"CPU": 8.0, "GPU": 0.0}, "the cluster", [{"CPU": 4.0}, {"CPU": 4.0}])


def test_dry_run_shows_where_each_trials_workers_go(tmp_path):
    from shrink.orchestrator import Plan

    spec = parse_spec(SPEC + f"resources: {{workers: 2, cpus: 1}}\nstorage_path: {tmp_path}")
    text = Plan.of(spec).describe({"CPU": 4.0, "GPU": 0.0})
    assert "each trial: 2 data-parallel workers x (1 CPU, 0 GPU) = 2 CPU, 0 GPU, placed by Ray Train" in text
    assert "this machine: 2 trials at a time on 4 CPUs and 0 GPUs" in text
    assert "placement of each trial on this machine: rank 0: 1 CPU, rank 1: 1 CPU" in text


def test_shrink_trial_refuses_zero_workers_and_an_indivisible_batch():
    from click.testing import CliRunner

    from shrink.cli import main

    common = ["trial", "--model", "small-mlp", "--dataset", "digits", "--strategy", "random", "--compression", "2"]
    zero = CliRunner().invoke(main, [*common, "--workers", "0"])
    assert zero.exit_code == 2 and "Invalid value for '--workers': 0 is not in the range x>=1" in zero.output
    odd = CliRunner().invoke(main, [*common, "--workers", "2", "--batch-size", "63"])
    assert odd.exit_code == 2
    assert "finetune.batch_size 63 is not divisible by workers 2: the global batch is split evenly" in odd.output
