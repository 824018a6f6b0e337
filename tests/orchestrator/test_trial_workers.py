"""``shrink trial --workers N`` takes the one-process trial's path: the same checks, the same base for every
``--base`` source, and the same ``--checkpoint-dir``, which either kind of trial resumes."""

import hashlib
import json

import torch
from click.testing import CliRunner
from mlflow import MlflowClient

from helpers import fake_published_weights, write_imagenet
from shrink import datasets, models
from shrink.cli import main


def shrink_trial(*args: str) -> dict:
    result = CliRunner().invoke(main, ["trial", "--strategy", "global-magnitude", "--threads", "1", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_state_dict_file_is_the_base_of_two_workers_whose_checkpoint_one_process_resumes(ray_tmpdir, tmp_path):
    """resnet20: BatchNorm (per worker, rank 0's statistics shared after each epoch) and channels-last
    convolutions under DDP over gloo, as a GPU trial of a convolutional net runs them over NCCL."""
    torch.manual_seed(7)
    weights = tmp_path / "w.pt"
    base = models.create("resnet20", input_shape=(1, 8, 8))
    torch.save(base.state_dict(), weights)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--model", "resnet20", "--dataset", "digits", "--compression", "4", "--epochs", "2", "--base",
            str(weights), "--checkpoint-dir", str(tmp_path / "ckpt"), "--tracking-uri", uri,
            "--no-compile"]  # eager, so channels-last (a compiled CPU step is NCHW), also in the suite's compiled pass

    pair = shrink_trial(*args, "--workers", "2")

    run = MlflowClient(tracking_uri=uri).get_run(pair["run_id"])
    assert run.data.params["base"] == str(weights)
    tags = [run.data.tags[f"shrink.{key}"] for key in ("base_source", "base_sha256", "workers", "channels_last")]
    assert tags == [f"file:{weights}", hashlib.sha256(weights.read_bytes()).hexdigest(), "2", "1"]
    cached = [entry.name for entry in (tmp_path / "cache" / "bases").iterdir() if entry.is_dir()]
    assert len(cached) == 1 and "_file-" in cached[0]  # adopted, never pretrained
    saved = torch.load(tmp_path / "ckpt" / "trial.pt", weights_only=True)  # the one-process trial's checkpoint file
    assert saved["model"]["bn1.num_batches_tracked"].item() == 2 * (len(datasets.load("digits", "train")) // 64)
    assert not torch.equal(saved["model"]["bn1.running_mean"], base.state_dict()["bn1.running_mean"])

    alone = shrink_trial(*args)  # the same trial in one process resumes after its last epoch, in the same run

    assert alone["run_id"] == pair["run_id"]
    assert (alone["epochs_run"], alone["test_top1"], alone["test_n"]) == (2, pair["test_top1"], pair["test_n"])
    history = MlflowClient(tracking_uri=uri).get_metric_history(pair["run_id"], "val_top1")
    assert sorted(m.step for m in history) == [1, 2]  # no epoch trained twice


def test_published_weights_are_the_base_of_two_workers(ray_tmpdir, tmp_path, torch_home, offline):
    published = fake_published_weights(torch_home)
    tree = write_imagenet(tmp_path / "imagenet")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    result = shrink_trial("--model", "resnet18", "--dataset", "imagenet", "--data-root", str(tree), "--base",
                          "torchvision", "--compression", "2", "--epochs", "0", "--workers", "2", "--tracking-uri",
                          uri, "--set", "measure_latency=false")

    tags = MlflowClient(tracking_uri=uri).get_run(result["run_id"]).data.tags
    assert (tags["shrink.base_source"], tags["shrink.base_sha256"]) == (
        "torchvision:IMAGENET1K_V1", hashlib.sha256(published.read_bytes()).hexdigest())
    assert (result["size"], result["nonzero_size"]) == (11_689_512, 5_844_756)  # resnet18's parameters, halved
