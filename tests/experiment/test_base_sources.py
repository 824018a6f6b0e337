"""Where a base comes from (pretrain, a state-dict file, published weights), what it records, and why a
base of other data or another split is refused."""

import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from shrink import models
from shrink.cli import main
from shrink.experiment import ConfigError, TrialConfig, pretrain, run_trial
from shrink.experiment.bases import BaseRequest, cached_bases, make_base

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mlp_file(tmp_path):
    """A small-mlp state dict for 8x8 digits (seeded initial weights): a base trained elsewhere."""
    torch.manual_seed(7)
    path = tmp_path / "mlp.pt"
    torch.save(models.create("small-mlp", input_shape=(1, 8, 8)).state_dict(), path)
    return path


def test_a_file_base_is_the_file_measured_on_this_split_and_recorded(mlp_file, mlflow_uri, read_run):
    config = TrialConfig.from_dict({
        "model": "small-mlp", "dataset": "digits", "strategy": "global-magnitude", "compression": 2.0,
        "base": str(mlp_file), "tracking_uri": mlflow_uri, "finetune": {"epochs": 0}, "threads": 1,
    })
    result = run_trial(config)

    [base] = cached_bases()
    assert base.sha256 == hashlib.sha256(mlp_file.read_bytes()).hexdigest()
    assert base.path.read_bytes() == mlp_file.read_bytes()
    assert (base.source, base.trained_elsewhere, base.recipe, base.seed, base.rewind) == (
        f"file:{mlp_file}", True, None, None, None)
    # the dense scores the trial measured are the ones the base's sidecar recorded on the same split
    assert result["dense_val_top1"] == base.val_scores.top1
    assert result["dense_test_top1"] == base.test_scores.top1
    run, _ = read_run(result["run_id"])
    assert run.data.tags["shrink.base_sha256"] == base.sha256
    assert run.data.tags["shrink.base_source"] == f"file:{mlp_file}"
    assert run.data.params["base"] == str(mlp_file)

    with pytest.raises(ConfigError, match="finetune.variant 'lr-rewind' replays the base's training recipe, but "
                                          f"the base \\({mlp_file}\\) was trained elsewhere"):
        run_trial(TrialConfig.from_dict({**config.to_dict(), "finetune": {"epochs": 1, "variant": "lr-rewind"}}))


def test_a_base_of_another_split_or_other_data_is_refused_naming_both(digits_base, digits_trial, tmp_path):
    with pytest.raises(ConfigError) as error:
        run_trial(digits_trial(split_seed=1))
    other = run_split_hash(split_seed=1)
    assert str(error.value) == (
        f"base {digits_base.path} was made on split {digits_base.sidecar.split_hash} (val_fraction 0.1, "
        f"split_seed 0); this trial's split is {other} (val_fraction 0.1, split_seed 1): the base's training "
        "data would overlap this trial's validation split")

    # the same digits file with one label changed: other data, another fingerprint (and another cache entry)
    import gzip

    from shrink.datasets import digits

    source = digits.DIGITS.find(next(d for d in digits._sklearn_data_dirs() if (d / digits.FILE).is_file()))
    lines = gzip.decompress((source / digits.FILE).read_bytes()).decode().splitlines()
    first = lines[0].split(",")
    first[-1] = str((int(float(first[-1])) + 1) % 10)
    changed = tmp_path / "digits"
    changed.mkdir()
    (changed / digits.FILE).write_bytes(gzip.compress("\n".join([",".join(first), *lines[1:]]).encode()))
    with pytest.raises(ConfigError, match=f"base {digits_base.path} was made on digits data with fingerprint "
                                          f"{digits_base.sidecar.data_fingerprint}; this trial's data has "
                                          "fingerprint [0-9a-f]{16}: other files"):
        run_trial(digits_trial(data_root=str(changed)))
    again = pretrain("small-mlp", "digits", epochs=5, cache_dir=digits_base.path.parent.parent, data_root=str(changed),
                     threads=1, progress=None)
    assert again.path.parent != digits_base.path.parent


def run_split_hash(**split) -> str:
    from shrink import datasets

    return datasets.load("digits", "train", **split).split_hash


def test_bad_trial_input_fails_in_seconds_before_any_base_is_made(tmp_path):
    start = time.monotonic()
    result = CliRunner().invoke(main, ["trial", "--model", "lenet-5", "--dataset", "fashion-mnist", "--strategy",
                                       "global-magnitude", "--compression", "1e9",
                                       "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert time.monotonic() - start < 10
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == ("Error: compression 1e+09 is unreachable for lenet-5: at most 77.2545 "
                                              "with the classifier unpruned (see prune_classifier)")
    assert not (tmp_path / "cache").exists()

    result = CliRunner().invoke(main, ["trial", "--model", "small-mlp", "--dataset", "digits", "--strategy",
                                       "global-magnitude", "--compression", "2", "--base", "torchvision"])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith("Error: base torchvision: small-mlp has no published "
                                                     "torchvision weights")
    assert not (tmp_path / "cache").exists()


PROGRAM = """
import sys
from shrink.experiment.bases import BaseRequest, make_base
base = make_base(BaseRequest("small-mlp", "digits", epochs=int(sys.argv[1])), threads=1)
print(base.sha256)
"""


def test_two_processes_asking_for_the_same_missing_base_make_it_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SHRINK_CACHE": str(tmp_path / "cache")}
    # 1000 epochs (~25 s on an idle core) outlast the second process's start-up (~5 s of imports), so the
    # second finds the first still making the base: with 150 an idle machine finished it first.
    # Its epoch lines go to a file: 1000 of them would fill a pipe nobody reads while the second waits.
    command = [sys.executable, "-c", PROGRAM, "1000"]
    log = tmp_path / "first.err"
    with open(log, "w") as err:
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        deadline = time.monotonic() + 300
        while "epoch 1/" not in log.read_text() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # until the first epoch's line: it holds the lock and is training
        # (compiled, torch's inductor may log a line of its own before it)
        assert "pretrain small-mlp on digits: epoch 1/1000" in [line.partition(" loss")[0]
                                                               for line in log.read_text().splitlines()], log.read_text()
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        first_out, _ = first.communicate(timeout=600)
    assert first.returncode == second.returncode == 0, second.stderr
    assert first_out == second.stdout and len(first_out.strip()) == 64
    assert "epoch" not in second.stderr
    assert "another process is making it" in second.stderr
    assert len([p for p in (tmp_path / "cache" / "bases").glob("*/base-*.pt")]) == 1


def test_list_bases_prints_the_cache(mlp_file):
    pretrain("small-mlp", "digits", epochs=1, threads=1, progress=None)
    make_base(BaseRequest("small-mlp", "digits", str(mlp_file)), threads=1, progress=None)
    result = CliRunner().invoke(main, ["list", "bases"])
    assert result.exit_code == 0, result.output
    header, *rows, total = (re.split(r"\s{2,}", line) for line in result.output.splitlines())
    assert header == ["model", "dataset", "source", "seed", "split", "sha256", "val top-1", "test top-1", "size"]
    assert len(rows) == 2 and total[0].startswith("2 bases in ")
    by_source = {row[2]: row for row in rows}
    pretrained = next(v for k, v in by_source.items() if k.startswith("digits-adam-e1-"))
    adopted = by_source[f"file:{mlp_file}"]
    assert pretrained[:2] == adopted[:2] == ["small-mlp", "digits"]
    assert (pretrained[3], adopted[3]) == ("0", "-")
    assert pretrained[4] == adopted[4] == "val_fraction 0.1, split_seed 0"
    assert adopted[5] == hashlib.sha256(mlp_file.read_bytes()).hexdigest()[:12]
    [base] = [b for b in cached_bases() if b.trained_elsewhere]
    assert adopted[6:8] == [f"{base.val_scores.top1:.4f}", f"{base.test_scores.top1:.4f}"]
    assert adopted[8] == f"{base.disk_bytes / 1e6:.1f} MB"
