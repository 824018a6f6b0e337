"""Real trials on digits and on tiny CIFAR-format files, read back from a temporary MLflow store."""

import json
import re
from importlib import metadata

import pytest
import torch

from shrink import datasets
from shrink.experiment import loop
from shrink.experiment.runtime import AmpMode, git_commit
from shrink.experiment import (CheckpointMismatch, ConfigError, DirectoryCheckpointer, TrialConfig, TrialDiverged,
                               pretrain, run_trial)

EPOCH_METRICS = {"train_loss", "val_top1", "val_top5", "val_loss", "epoch_time_s", "images_per_s"}
FINAL_METRICS = {
    "dense_val_top1", "dense_val_top5", "dense_test_top1", "dense_test_top5", "pruned_val_top1", "pruned_val_top5",
    "val_n", "test_top1", "test_top5", "test_loss", "test_n", "delta_top1", "delta_top5", "size", "nonzero_size",
    "compression_ratio", "macs", "nonzero_macs", "theoretical_speedup", "epochs_run", "best_epoch",
    "stopped_early", "wall_time_s", "measured_speedup", "measured_speedup_b1", "latency_ms", "dense_latency_ms",
}


def test_a_trial_records_every_field_of_the_schema(digits_trial, digits_base, mlflow_uri, read_run, tmp_path):
    from mlflow import MlflowClient

    parent = MlflowClient(tracking_uri=mlflow_uri).create_run("0").info.run_id
    result = run_trial(digits_trial(parent_run_id=parent, sweep="demo", strategy="GlobalMagWeight"))
    run, history = read_run(result["run_id"])

    # small-mlp on 8x8 digits: fc1 64x100 + 100, fc2 100x10 + 10 = 7,510 parameters, 7,400 MACs.
    # 4x keeps 7510 / 4 = 1877.5 -> 1,878: fc2 and both biases (1,110) plus 768 of fc1's 6,400 weights.
    assert (result["size"], result["nonzero_size"], result["macs"], result["nonzero_macs"]) == (7510, 1878, 7400, 1768)
    assert result["compression_ratio"] == 7510 / 1878
    assert result["theoretical_speedup"] == 7400 / 1768
    # The dense control is the base's own evaluation, recorded again.
    assert result["dense_val_top1"] == digits_base.sidecar.val.top1
    assert result["dense_test_top1"] == digits_base.sidecar.test.top1
    assert result["delta_top1"] == result["test_top1"] - result["dense_test_top1"]
    assert result["delta_top5"] == result["test_top5"] - result["dense_test_top5"]
    assert (result["epochs_run"], result["stopped_early"]) == (2, 0)
    # The best epoch is the first to reach the highest validation top-1, epoch 0 being the pruned model itself
    # (patience 5, min_delta 0: a later epoch must beat it strictly), as the run's own history records them.
    scores = [result["pruned_val_top1"], *(value for _, value in sorted(history["val_top1"]))]
    assert result["best_epoch"] == scores.index(max(scores))

    assert run.info.status == "FINISHED"
    config = digits_trial(parent_run_id=parent, sweep="demo", strategy="GlobalMagWeight").resolved()
    expected_params = {**config.flat(), "base_sha256": digits_base.sha256, "latency.phase": "in-trial",
                       "latency.amp": "off", "latency.channels_last": False}
    params = dict(run.data.params)
    assert params.pop("latency.device").startswith("cpu: ")  # the CPU model, then "(1 threads)"
    assert params == {k: str(v) for k, v in expected_params.items()}
    assert run.data.params["strategy"] == "global-magnitude"
    assert (run.data.params["finetune.optimizer"], run.data.params["finetune.lr"]) == ("adam", "0.0003")

    tags = run.data.tags
    assert {k: tags[k] for k in ("shrink.kind", "shrink.status", "shrink.sweep", "mlflow.parentRunId",
                                 "shrink.base_sha256", "shrink.device", "shrink.amp", "shrink.decode")} == {
        "shrink.kind": "trial", "shrink.status": "finished", "shrink.sweep": "demo", "mlflow.parentRunId": parent,
        "shrink.base_sha256": digits_base.sha256, "shrink.device": "cpu", "shrink.amp": "off", "shrink.decode": "cpu"}
    assert "shrink.failure" not in tags
    assert tags["shrink.split_hash"] == datasets.load("digits", "train").split_hash
    assert tags.get("shrink.git_commit") == git_commit()  # None (no tag) outside a git checkout
    assert json.loads(tags["shrink.versions"])["torch"] == metadata.version("torch")
    assert tags["shrink.hardware"].endswith("(torch threads: 1)")
    # What varies leads the name (MLflow's table cuts it); the data is the runs table's Dataset column.
    assert run.info.run_name == "global-magnitude x4 s0 small-mlp"
    inputs = sorted(((i.dataset.name, i.dataset.digest, i.dataset.source_type, json.loads(i.dataset.source),
                      json.loads(i.dataset.profile), [(t.key, t.value) for t in i.tags])
                     for i in run.inputs.dataset_inputs), key=lambda i: i[0])
    assert inputs == [
        (f"digits/{split}", tags["shrink.split_hash"], "shrink", {"dataset": "digits", "split": split},
         {"num_rows": examples}, [("mlflow.data.context", split)])
        for split, examples in (("test", 359), ("train", 1293), ("val", 145))]

    assert set(history) == EPOCH_METRICS | FINAL_METRICS
    assert all([step for step, _ in history[key]] == [1, 2] for key in EPOCH_METRICS)
    assert {key: history[key] for key in FINAL_METRICS} == {key: [(0, float(result[key]))] for key in FINAL_METRICS}

    artifacts = tmp_path / "mlruns"
    layers = next(artifacts.rglob("layers.csv")).read_text().splitlines()
    assert layers == ["name,shape,params,nonzero,density,macs", "fc1,100x64,6500,868,0.13353846153846155,6400",
                      "fc2,10x100,1010,1010,1.0,1000"]
    assert json.loads(next(artifacts.rglob("config.json")).read_text()) == {
        **config.to_dict(), "base_sha256": digits_base.sha256}


def test_same_config_and_seed_give_the_same_masks_and_metrics(digits_trial, read_run, tmp_path):
    def deterministic_algorithms_on(epoch, metrics):
        assert torch.are_deterministic_algorithms_enabled()

    runs = []
    for name in ("a", "b"):
        checkpointer = DirectoryCheckpointer(tmp_path / name)
        result = run_trial(digits_trial(strategy="random", seed=5, deterministic=True), checkpointer=checkpointer,
                           reporter=deterministic_algorithms_on)
        runs.append((result, checkpointer.load()["masks"], read_run(result["run_id"])[1]))
    (first, masks_a, history_a), (second, masks_b, history_b) = runs
    assert first["run_id"] != second["run_id"]
    assert masks_a.keys() == masks_b.keys() == {"fc1.weight"}
    assert all(torch.equal(masks_a[k], masks_b[k]) for k in masks_a)
    varying = {"run_id", "wall_time_s", "measured_speedup", "measured_speedup_b1", "latency_ms", "dense_latency_ms"}
    assert {k: v for k, v in first.items() if k not in varying} == {k: v for k, v in second.items() if k not in varying}
    timing = {"epoch_time_s", "images_per_s", "wall_time_s", "measured_speedup", "measured_speedup_b1", "latency_ms",
              "dense_latency_ms"}
    assert {k: v for k, v in history_a.items() if k not in timing} == {
        k: v for k, v in history_b.items() if k not in timing}


class _Watched:
    """A split that logs each time it is read, optionally with its labels replaced."""

    def __init__(self, split, log: list, wrong_labels: bool = False):
        self._split, self._log, self._wrong = split, log, wrong_labels
        self.info, self.split, self.split_hash = split.info, split.split, split.split_hash

    def __len__(self):
        return len(self._split)

    def batches(self, *args, **kwargs):
        self._log.append(self.split)
        for x, y in self._split.batches(*args, **kwargs):
            yield x, (y + 1) % 10 if self._wrong else y

    def sample(self, *args, **kwargs):
        self._log.append(f"{self.split}.sample")
        return self._split.sample(*args, **kwargs)


def test_early_stopping_reads_the_validation_split_and_never_the_test_split(digits_trial, monkeypatch):
    from shrink.experiment import trial
    from shrink.experiment.data import Splits, load_splits

    def watched(wrong_test_labels: bool):
        log = []

        def load(*args):
            splits = load_splits(*args)
            return Splits(_Watched(splits.train, log), _Watched(splits.val, log),
                          _Watched(splits.test, log, wrong_test_labels))

        monkeypatch.setattr(trial, "load_splits", load)
        config = digits_trial(finetune={"epochs": 12, "patience": 1, "lr": 0.01}, strategy="global-gradient")
        return run_trial(config), log

    honest, log = watched(wrong_test_labels=False)
    assert honest["stopped_early"] == 1 and honest["epochs_run"] < 12
    epochs = honest["epochs_run"]
    # Pruning batch (drawn when the trial's pruner is made, on the dense base), dense control (val, test),
    # pruned val, then train + val per epoch, then test once.
    assert log == ["train.sample", "val", "test", "val", *["train", "val"] * epochs, "test"]

    corrupted, log = watched(wrong_test_labels=True)
    assert log == ["train.sample", "val", "test", "val", *["train", "val"] * epochs, "test"]
    assert (corrupted["epochs_run"], corrupted["best_epoch"]) == (epochs, honest["best_epoch"])
    assert corrupted["pruned_val_top1"] == honest["pruned_val_top1"]
    assert corrupted["test_top1"] != honest["test_top1"]


def test_a_diverging_trial_raises_and_is_recorded_as_failed(digits_trial, read_run, mlflow_uri):
    from mlflow import MlflowClient

    config = digits_trial(finetune={"optimizer": "sgd", "lr": 1e30})
    with pytest.raises(TrialDiverged, match=r"^epoch 1: training loss became (nan|inf) by step \d+ of the epoch$"):
        run_trial(config)
    client = MlflowClient(tracking_uri=mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("shrink").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["shrink.status"] == "failed"
    assert re.fullmatch(r"TrialDiverged: epoch 1: training loss became (nan|inf) by step \d+ of the epoch",
                        run.data.tags["shrink.failure"])


class _Stop(Exception):
    pass


def test_a_resumed_trial_continues_after_its_last_epoch_in_the_same_run(digits_trial, read_run, tmp_path):
    config = digits_trial(finetune={"epochs": 3, "patience": 3})
    checkpointer = DirectoryCheckpointer(tmp_path / "state")

    def stop_after_first(epoch, metrics):
        raise _Stop(f"interrupted after epoch {epoch}")

    with pytest.raises(_Stop):
        run_trial(config, checkpointer=checkpointer, reporter=stop_after_first)
    run_id = checkpointer.load()["run_id"]
    run, history = read_run(run_id)
    assert (run.info.status, run.data.tags["shrink.failure"]) == ("FAILED", "_Stop: interrupted after epoch 1")
    assert "val_top1" not in history  # stopped after epoch 1's checkpoint, before its points were logged

    seen = []
    resumed = run_trial(config, checkpointer=checkpointer, reporter=lambda epoch, metrics: seen.append(epoch))
    assert seen == [2, 3]
    assert resumed["run_id"] == run_id
    run, history = read_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["shrink.status"] == "finished"
    assert "shrink.failure" not in run.data.tags
    assert [step for step, _ in history["val_top1"]] == [1, 2, 3]

    straight = run_trial(config)
    _, straight_history = read_run(straight["run_id"])
    assert history["val_top1"] == straight_history["val_top1"]
    assert history["train_loss"] == straight_history["train_loss"]
    assert (resumed["test_top1"], resumed["best_epoch"]) == (straight["test_top1"], straight["best_epoch"])


def test_an_fp16_trial_resumes_with_the_loss_scalers_state(digits_trial, read_run, tmp_path, monkeypatch):
    # fp16 with loss scaling is what a V100 or T4 computes in (runtime.amp_mode); it runs on this CPU too.
    monkeypatch.setattr(loop, "device_amp", lambda device: AmpMode.FP16)
    config = digits_trial(amp=True, finetune={"epochs": 3, "patience": 3})
    interrupted, straight = DirectoryCheckpointer(tmp_path / "resumed"), DirectoryCheckpointer(tmp_path / "straight")

    def stop_after_first(epoch, metrics):
        raise _Stop(f"interrupted after epoch {epoch}")

    with pytest.raises(_Stop):
        run_trial(config, checkpointer=interrupted, reporter=stop_after_first)
    assert interrupted.load()["scaler"]["_growth_tracker"] == 20  # steps without an overflow in epoch 1
    resumed = run_trial(config, checkpointer=interrupted)
    uninterrupted = run_trial(config, checkpointer=straight)
    assert read_run(resumed["run_id"])[0].data.tags["shrink.amp"] == "fp16"
    # digits: 1,797 images, 359 for test, 145 (10% of the rest) for validation: 1,293 training images, 20 full
    # batches of 64 an epoch, none overflowing at the initial scale 2**16: the count goes on from 20, not from 0.
    assert [interrupted.load()["scaler"][k] for k in ("scale", "_growth_tracker")] == [2.0**16, 60]
    assert interrupted.load()["scaler"] == straight.load()["scaler"]
    assert read_run(resumed["run_id"])[1]["train_loss"] == read_run(uninterrupted["run_id"])[1]["train_loss"]


def test_a_saved_state_of_another_trial_is_refused(digits_trial, tmp_path):
    checkpointer = DirectoryCheckpointer(tmp_path / "state")
    run_trial(digits_trial(finetune={"epochs": 1}), checkpointer=checkpointer)
    with pytest.raises(CheckpointMismatch, match=r"belongs to another trial \(differs in compression\)"):
        run_trial(digits_trial(finetune={"epochs": 1}, compression=8.0), checkpointer=checkpointer)


def test_a_trial_on_cifar_format_files_with_a_data_driven_strategy(cifar_root, mlflow_uri, read_run):
    base = pretrain("small-cnn", "cifar10", epochs=1, data_root=str(cifar_root), threads=1, progress=None)
    config = TrialConfig.from_dict({
        "model": "small-cnn", "dataset": "cifar10", "strategy": "global-gradient", "compression": 4.0,
        "prune_classifier": True, "data_root": str(cifar_root), "base_path": str(base.path), "prune_batch_size": 32,
        "tracking_uri": mlflow_uri, "threads": 1, "finetune": {"epochs": 1, "batch_size": 16},
    })
    result = run_trial(config)
    run, history = read_run(result["run_id"])
    # small-cnn at 3x32x32: conv 3->16 (448), conv 16->32 (4,640), fc 32*8*8->10 (20,490): 25,578 parameters;
    # 4x keeps round(25578 / 4) = 6,395 (halves round up), the 58 biases among them.
    assert (result["size"], result["nonzero_size"]) == (25578, 6395)
    assert run.info.status == "FINISHED"
    assert set(history) == EPOCH_METRICS | FINAL_METRICS
    assert run.data.tags["shrink.split_hash"] == datasets.load("cifar10", "train", root=cifar_root).split_hash
    assert run.data.params["finetune.batch_size"] == "16" and run.data.params["prune_batch_size"] == "32"


def test_impossible_requests_fail_before_any_work(digits_trial, mlflow_uri):
    from mlflow import MlflowClient

    with pytest.raises(ConfigError, match=r"^compression 50 is unreachable for small-mlp: at most 6\.7\d* with the "):
        run_trial(digits_trial(compression=50.0))
    with pytest.raises(ConfigError, match=r"^finetune.batch_size 5000 exceeds the \d+ training examples of digits$"):
        run_trial(digits_trial(finetune={"batch_size": 5000}))
    with pytest.raises(ConfigError, match=r"^unknown strategy 'nope'; known: "):
        run_trial(digits_trial(strategy="nope"))
    assert MlflowClient(tracking_uri=mlflow_uri).search_experiments(filter_string="name = 'shrink'") == []


def test_a_base_made_for_another_model_is_refused(digits_trial, tmp_path):
    other = pretrain("small-cnn", "digits", epochs=1, threads=1, progress=None)
    with pytest.raises(CheckpointMismatch, match=r"is small-cnn on digits, the trial is small-mlp on digits"):
        run_trial(digits_trial(base_path=str(other.path)))


def test_amp_on_a_cpu_is_bf16_autocast_recorded_on_the_run(digits_trial, read_run, monkeypatch):
    from shrink.experiment import loop

    seen = []
    step = loop.train_epoch
    monkeypatch.setattr(loop, "train_epoch", lambda *args, **kwargs: seen.append(args[3].amp) or step(*args, **kwargs))
    result = run_trial(digits_trial(amp=True, finetune={"epochs": 1}))
    run, _ = read_run(result["run_id"])
    assert seen == ["bf16"]
    assert (run.data.params["amp"], run.data.tags["shrink.amp"]) == ("True", "bf16")
    # bf16 keeps fp32's range: one epoch of fine-tuning at 4x loses little of the dense model's accuracy.
    assert result["test_top1"] > result["dense_test_top1"] - 0.05
