"""Base models: content-addressed files, a sidecar, a cache that makes the second call a no-op."""

import hashlib
import json
import time
from importlib import metadata

import pytest

from shrink.experiment.bases import Sidecar
from shrink.experiment.runtime import COMPILE_ENV
from shrink.experiment import CheckpointMismatch, ConfigError, bases_dir, load_base, pretrain


def test_pretrain_writes_a_hash_named_checkpoint_and_sidecar_then_reuses_it(tmp_path, monkeypatch):
    monkeypatch.delenv(COMPILE_ENV, raising=False)  # the CPU defaults, also in the suite's compiled pass
    lines = []
    base = pretrain("small-cnn", "digits", epochs=2, seed=3, threads=1, progress=lines.append)

    data = base.path.read_bytes()
    assert base.sha256 == hashlib.sha256(data).hexdigest()
    assert base.path.name == f"base-{base.sha256[:16]}.pt"
    assert base.path.parent.parent == bases_dir() == tmp_path / "cache" / "bases"
    sidecar = json.loads(base.path.with_suffix(".json").read_text())
    assert Sidecar.from_json(base.path.with_suffix(".json").read_text()) == base.sidecar  # what was written reads back
    assert json.loads(base.sidecar.to_json()) == sidecar
    assert {k: sidecar[k] for k in ("file", "sha256", "model", "dataset", "family", "seed")} == {
        "file": base.path.name, "sha256": base.sha256, "model": "small-cnn", "dataset": "digits",
        "family": "digits", "seed": 3}
    assert sidecar["recipe"]["epochs"] == 2 and sidecar["recipe"]["optimizer"] == "adam"
    assert sidecar["recipe"]["name"].startswith("digits-adam-e2-")
    assert 0.5 < sidecar["val"]["top1"] <= 1 and 0.5 < sidecar["test"]["top1"] <= 1
    assert (sidecar["val"]["n"], sidecar["test"]["n"]) == (145, 359)  # digits' carve-out at val_fraction 0.1
    assert sidecar["versions"]["torch"] == metadata.version("torch")
    assert (sidecar["amp"], sidecar["channels_last"], sidecar["compile"]) == ("off", True, False)  # CPU defaults
    older = json.dumps({k: v for k, v in sidecar.items() if k != "compile"})  # written before compile existed
    assert Sidecar.from_json(older).run.compile is False
    assert [line.split(" loss")[0] for line in lines[:2]] == [
        "pretrain small-cnn on digits: epoch 1/2", "pretrain small-cnn on digits: epoch 2/2"]

    state = load_base(base.path, base.sha256)
    assert set(state) == {"features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
                          "fc.weight", "fc.bias"}

    def no_training(*args, **kwargs):
        raise AssertionError("a cached base must not be trained again")

    monkeypatch.setattr("shrink.experiment.bases.run_epochs", no_training)
    start = time.perf_counter()
    again = pretrain("small-cnn", "digits", epochs=2, seed=3, progress=lines.append)
    assert time.perf_counter() - start < 0.5
    assert (again.path, again.sha256) == (base.path, base.sha256)
    assert len(lines) == 3  # two epochs and the "wrote" line; nothing on the cache hit


def test_load_base_refuses_a_file_whose_hash_differs(digits_base, tmp_path):
    with pytest.raises(CheckpointMismatch, match="expected 0{64}: it is not the base this trial names"):
        load_base(digits_base.path, "0" * 64)
    tampered = tmp_path / "base.pt"
    tampered.write_bytes(digits_base.path.read_bytes() + b"x")
    with pytest.raises(CheckpointMismatch, match=f"expected {digits_base.sha256}"):
        load_base(tampered, digits_base.sha256)


def test_pretrain_rejects_bad_input_before_training():
    with pytest.raises(ConfigError, match="epochs must be an integer >= 1, got 0"):
        pretrain("small-mlp", "digits", epochs=0)
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        pretrain("nope", "digits")
