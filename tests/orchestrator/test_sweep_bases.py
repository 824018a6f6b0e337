"""A sweep's bases on local Ray: published weights read offline from torch.hub's cache, and missing
bases made at the same time as Ray tasks, not in the driver."""

import hashlib
import json


from helpers import digits_sweep_text, fake_published_weights, write_imagenet
from shrink.orchestrator import load_spec, parse_spec, run_sweep
from shrink.orchestrator.spec import BaseKey
from shrink.report import build_report
from sweep_testing import sweep_runs, trial_runs


def test_an_imagenet_sweep_prunes_torchvisions_published_resnet18_offline(tmp_path, torch_home, offline, ray_tmpdir):
    weights = fake_published_weights(torch_home)  # a download would fail: the cached file must be used
    tree = write_imagenet(tmp_path / "imagenet")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "imagenet.yaml"
    path.write_text("\n".join([
        "name: tiny-imagenet", "dataset: imagenet", f"data_root: {tree}", "models: [resnet18]",
        "base: torchvision:IMAGENET1K_V1", "strategies: [global-magnitude]", "compressions: [2, 4]", "seeds: [0]",
        "finetune: {epochs: 0}", "resources: {cpus: 1}", f"tracking_uri: {uri}", f"storage_path: {tmp_path / 'ray'}",
        "measure_latency: false",  # timing resnet18 at 224x224 costs minutes on a CPU
    ]) + "\n")

    outcome = run_sweep(load_spec(path))

    assert (outcome.total, outcome.finished, outcome.errored) == (2, 2, 0)
    sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()
    [parent] = sweep_runs(uri)
    runs = trial_runs(uri, parent.info.run_id)
    assert sorted(run.data.params["compression"] for run in runs) == ["2.0", "4.0"]
    for run in runs:
        assert run.data.tags["shrink.base_sha256"] == sha256
        assert run.data.tags["shrink.base_source"] == "torchvision:IMAGENET1K_V1"
        assert run.data.params["base"] == "torchvision:IMAGENET1K_V1"
    [dense] = {run.data.metrics["dense_test_top1"] for run in runs}
    [base_file] = (tmp_path / "cache" / "bases").glob("resnet18_imagenet_torchvision-IMAGENET1K_V1-*/base-*.pt")
    assert base_file.read_bytes() == weights.read_bytes()
    sidecar = json.loads(base_file.with_suffix(".json").read_text())
    assert (sidecar["source"], sidecar["trained_elsewhere"], sidecar["test"]["top1"]) == (
        "torchvision:IMAGENET1K_V1", True, dense)

    report = build_report("tiny-imagenet", tracking_uri=uri, out_dir=tmp_path / "report", log=lambda line: None)
    text = (report.out_dir / "report.md").read_text()
    assert f"| imagenet | resnet18 | 2 | `{sha256}` | torchvision:IMAGENET1K_V1 |" in text
    assert "validation carve-out was part of the training data of base torchvision:IMAGENET1K_V1" in text


def test_published_weights_become_a_base_in_a_ray_task_offline(tmp_path, torch_home, offline, ray_tmpdir):
    """The sweep's base phase alone (the sweep above costs minutes of CPU, most of it timing 224x224
    forward passes): the cached file is adopted byte for byte and measured on the split, nothing fetched."""
    import ray

    from shrink.orchestrator.base_tasks import make_bases

    weights = fake_published_weights(torch_home)
    tree = write_imagenet(tmp_path / "imagenet")
    spec = parse_spec("\n".join([
        "dataset: imagenet", f"data_root: {tree}", "models: [resnet18]", "base: torchvision",
        "strategies: [random]", "compressions: [2]", "seeds: [0, 1]",
    ]))
    ray.init(address="local", num_cpus=1, include_dashboard=False)
    try:
        bases = make_bases(spec, print)
    finally:
        ray.shutdown()
    [(key, base)] = bases.items()
    assert key == BaseKey("resnet18", None)  # one base for both seeds: it was trained elsewhere
    assert base.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert base.path.read_bytes() == weights.read_bytes()
    assert (base.source, base.trained_elsewhere, base.seed, base.recipe) == ("torchvision:IMAGENET1K_V1", True,
                                                                             None, None)
    assert base.split == "val_fraction 0.1, split_seed 0"
    assert sorted(p.name for p in weights.parent.iterdir()) == [weights.name]


def test_bases_of_two_models_are_made_at_once_as_ray_tasks(tmp_path, ray_tmpdir, capsys):
    import ray

    from shrink.orchestrator.base_tasks import make_bases

    spec = parse_spec(digits_sweep_text(models="[small-mlp, small-cnn]", strategies="[random]", compressions="[2]",
                                        seeds="[0]", pretrain="{epochs: 40}", finetune=None))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=True)
    try:
        bases = make_bases(spec, print)
    finally:
        ray.shutdown()

    assert sorted(bases) == [BaseKey("small-cnn", 0), BaseKey("small-mlp", 0)]
    spans = [(base.sidecar.run.started_at, base.sidecar.run.finished_at) for base in bases.values()]
    (start_a, end_a), (start_b, end_b) = spans
    assert start_a < end_b and start_b < end_a, spans  # the two trainings overlapped in time
    out = capsys.readouterr().out
    assert ("bases: making 2 as Ray tasks at once, each with 1 CPU and 0 GPU: small-mlp on digits (pretrain seed 0), "
            "small-cnn on digits (pretrain seed 0)") in out
    assert "2/2 bases made" in out

    again = make_bases(spec, print)  # cached now: found by the driver without Ray (no Ray is running)
    assert {k: b.sha256 for k, b in again.items()} == {k: b.sha256 for k, b in bases.items()}
    assert "Ray tasks" not in capsys.readouterr().out


def test_a_driver_killed_while_bases_are_made_resumes_with_the_finished_ones(tmp_path, ray_tmpdir):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from helpers import digits_sweep, end_processes_with_env

    root = Path(__file__).resolve().parents[2]
    path = digits_sweep(tmp_path, name="phoenix")
    path.write_text(path.read_text().replace("models: [small-mlp]", "models: [small-mlp, small-cnn]")
                    .replace("pretrain: {epochs: 3}", "pretrain: {epochs: 100}")
                    .replace("seeds: [0, 1]", "seeds: [0]").replace("compressions: [2, 4]", "compressions: [2]")
                    .replace("strategies: [global-magnitude, random]", "strategies: [random]"))
    cache = tmp_path / "cache" / "bases"
    sweep = [sys.executable, "-m", "shrink", "sweep", str(path)]
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(sweep, cwd=root, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        # small-mlp trains about twice as fast as small-cnn: stop the driver once its base is written
        while not list(cache.glob("small-mlp_*/base-*.json")) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert driver.poll() is None, log.read_text()[-3000:]
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    end_processes_with_env("RAY_TMPDIR", ray_tmpdir)  # the killed driver's Ray and its base tasks
    [mlp] = cache.glob("small-mlp_*/base-*.json")
    assert not list(cache.glob("small-cnn_*/base-*.json")), "small-cnn finished before the driver was stopped"
    written = mlp.read_bytes()

    again = subprocess.run(sweep, cwd=root, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "pass --resume to continue it" in again.stderr
    resumed = subprocess.run([*sweep, "--resume"], cwd=root, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "base small-mlp on digits (pretrain seed 0): cached" in resumed.stdout
    assert "bases: making 1 as Ray tasks at once" in resumed.stdout
    assert "2/2 done: 2 finished" in resumed.stdout
    assert mlp.read_bytes() == written
