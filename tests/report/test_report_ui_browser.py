"""The MLflow UI in a real headless browser (Debian's chromium): after a small real sweep and its report,
the URL `shrink ui` prints opens the runs table of the sweep's trial runs, in the model-training view, with
their names, what varies, the test accuracy and the data in view."""

import html
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from helpers import digits_sweep, end_processes_with_env, free_port

CHROMIUM = shutil.which("chromium")
ROOT = Path(__file__).resolve().parents[2]
TRIALS = ["global-magnitude x2 s0 small-mlp", "global-magnitude x2 s1 small-mlp"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


def _run(args: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "shrink", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _rendered_text(url: str, profile: Path) -> str:
    """The text the page shows once its JavaScript has run (chromium's DOM dump, tags stripped)."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
               "--window-size=1600,1000", "--virtual-time-budget=20000", "--dump-dom", url]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=300).stdout
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


@pytest.fixture(scope="module")
def browsed_sweep(tmp_path_factory):
    """A real sweep (2 trials of small-mlp on digits, one fine-tuning epoch) and its report."""
    folder = tmp_path_factory.mktemp("browsed")
    ray_tmp = tempfile.mkdtemp(prefix="shrink-ray-", dir="/tmp")  # short: Ray's socket paths
    env = os.environ | {"PYTHONPATH": str(ROOT), "RAY_TMPDIR": ray_tmp, "SHRINK_CACHE": str(folder / "cache")}
    digits_sweep(folder, "browsed", strategies="[global-magnitude]", compressions="[2]", pretrain="{epochs: 1}",
                 finetune="{epochs: 1}")
    try:
        _run(["sweep", "browsed.yaml"], folder, env)
    finally:
        end_processes_with_env("RAY_TMPDIR", ray_tmp)  # Ray's agents can outlive the driver
        shutil.rmtree(ray_tmp, ignore_errors=True)
    _run(["report", "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}"], folder, env)
    return folder, env


def test_the_printed_url_opens_the_runs_table_of_the_sweeps_trials(browsed_sweep):
    folder, env = browsed_sweep
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("shrink")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "shrink", "ui", "--port", str(port), "--tracking-uri", uri],
                              cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              start_new_session=True)
    try:
        runs_url = re.fullmatch(r"MLflow UI for \S+ at (\S+) \(Ctrl-C stops it\)\n", server.stdout.readline())[1]
        summary_url = server.stdout.readline().rstrip("\n").rpartition(" ")[2]
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "MLflow UI never answered"
                time.sleep(0.5)
        profile = folder / "chromium"
        runs = _rendered_text(runs_url, profile)
        # The model-training view's runs table, listing exactly the two trial runs (not the parent run).
        assert "Model training" in runs and "You're viewing a shared view" in runs
        assert all(name in runs for name in TRIALS) and "2 matching runs" in runs, runs
        assert "browsed" not in runs.replace(runs_url, "")  # the parent run is not listed
        # Each row's cells: strategy, compression, seed, test top-1, its change from the dense control, then the
        # three splits as dataset inputs (name, split hash as digest, context).
        trials = client.search_runs([experiment.experiment_id], "tags.`shrink.kind` = 'trial'")
        for run in trials:
            params, metrics, split = run.data.params, run.data.metrics, run.data.tags["shrink.split_hash"]
            cells = (f"global-magnitude 2.0 {params['seed']} {metrics['test_top1']!r} {metrics['delta_top1']!r} "
                     f"digits/train ({split}) train , digits/val ({split}) val , digits/test ({split}) test")
            assert cells in runs, runs
        summary = _rendered_text(summary_url, profile)
        assert "report/summary.json" in summary and "View as table" in summary
        assert "dataset model strategy compression count failed running test_top1_mean" in summary
        assert "digits small-mlp global-magnitude 2 2 0 0" in summary, summary
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its worker, started by this test
        server.wait(timeout=30)
        server.stdout.close()
