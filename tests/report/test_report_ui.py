"""`shrink ui` serves the MLflow UI on 127.0.0.1 only and prints its URL."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from click.testing import CliRunner
from mlflow import MlflowClient
from report_sweeps import trial, write_sweep

from helpers import free_port
from shrink.cli import main
from shrink.report import build_report

ROOT = Path(__file__).resolve().parents[2]


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of TCP sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if name == "tcp":
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def test_ui_binds_only_loopback_prints_the_sweep_url_and_serves_the_report(make_store, tmp_path):
    uri = make_store()
    parent = write_sweep(uri, "demo", [trial("random", 2, 0, 0.5)])
    build_report("demo", tracking_uri=uri, out_dir=tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shrink", "ui", "demo", "--port", str(port), "--tracking-uri", uri],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()
        # The view is saved in the experiment, as the UI's "share" link saves one: the URL names its key.
        (key, view), = ((k.removeprefix("mlflow.sharedViewState."), v) for k, v in
                        MlflowClient(tracking_uri=uri).get_experiment("1").tags.items()
                        if k.startswith("mlflow.sharedViewState."))
        assert json.loads(view) == {
            "searchFilter": f"tags.`mlflow.parentRunId` = '{parent}'", "orderByKey": "tags.`mlflow.runName`",
            "orderByAsc": True,
            "selectedColumns": ["params.`strategy`", "params.`compression`", "params.`seed`", "metrics.`test_top1`",
                                "metrics.`delta_top1`", "attributes.`Dataset`"],
            "columnOrder": ["attributes.`Run Name`", "params.`strategy`", "params.`compression`", "params.`seed`",
                            "metrics.`test_top1`", "metrics.`delta_top1`", "attributes.`Dataset`"],
            "columnWidths": {"attributes.`Run Name`": 280, "params.`strategy`": 150}}
        assert key == hashlib.sha256(view.encode()).hexdigest()
        url = f"http://127.0.0.1:{port}/#/experiments/1/runs?viewStateShareKey={key}&workflowType=machine_learning"
        assert first == f"MLflow UI for {uri} at {url} (Ctrl-C stops it)\n"
        assert second == (f"sweep demo's summary table, report.md and figures (after `shrink report`): "
                           f"http://127.0.0.1:{port}/#/experiments/1/runs/{parent}/artifacts/report/summary.json"
                           "?workflowType=machine_learning\n")
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "MLflow UI never answered"
                time.sleep(0.5)
        assert _listening_addresses(port) == {"127.0.0.1"}
        listing = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/artifacts/list?run_id={parent}&path=report"
        with urllib.request.urlopen(listing, timeout=10) as response:
            files = json.load(response)["files"]
        assert [f["path"] for f in files] == [
            "report/comparisons.json", "report/mnist_lenet-300-100.png", "report/mnist_lenet-300-100.svg",
            "report/report.md", "report/summary.json"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its worker, started by this test
        proc.wait(timeout=30)
        proc.stdout.close()


def test_ui_of_two_sweeps_prints_each_sweeps_runs_table_and_the_first_ones_report(make_store):
    from shrink.report.runs import find_sweep
    from shrink.report.ui import announce, ui_url

    uri = make_store()
    first = write_sweep(uri, "baselines", [trial("random", 2, 0, 0.5)])
    later = write_sweep(uri, "method", [trial("global-magnitude", 2, 0, 0.6)])
    lines = announce(uri, "127.0.0.1", 5000, ("baselines", "method"))
    a, b = find_sweep(uri, "baselines"), find_sweep(uri, "method")
    assert (a.run_id, b.run_id) == (first, later)
    assert ui_url("127.0.0.1", 5000, a) != ui_url("127.0.0.1", 5000, b)  # one saved view per sweep
    assert lines == [
        f"MLflow UI for {uri} at {ui_url('127.0.0.1', 5000, a)} (Ctrl-C stops it)",
        f"sweep method's trial runs: {ui_url('127.0.0.1', 5000, b)}",
        "sweep baselines's summary table, report.md and figures (after `shrink report baselines method`): "
        f"http://127.0.0.1:5000/#/experiments/1/runs/{first}/artifacts/report/summary.json?workflowType=machine_learning"]
    tags = MlflowClient(tracking_uri=uri).get_experiment("1").tags
    assert sum(key.startswith("mlflow.sharedViewState.") for key in tags) == 2


def test_ui_on_a_missing_store_fails_before_starting(tmp_path):
    result = CliRunner().invoke(main, ["ui", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code == 1
    assert result.output == (f"Error: no MLflow store at {tmp_path / 'none.db'}: "
                             "run `shrink sweep` first, or pass --tracking-uri\n")


def test_ui_for_a_tracking_server_only_points_at_it():
    result = CliRunner().invoke(main, ["ui", "--tracking-uri", "http://mlflow.example:5000"])
    assert result.exit_code == 0
    assert result.output == "The tracking store is an MLflow server already: open http://mlflow.example:5000\n"


def test_experiments_are_tagged_for_the_model_training_view(make_store):
    from mlflow import MlflowClient

    from shrink.experiment.tracking import ensure_experiment

    uri = make_store()
    client = MlflowClient(tracking_uri=uri)
    kind = "mlflow.experimentKind"
    created = ensure_experiment(uri, "fresh")
    assert client.get_experiment(created).tags[kind] == "custom_model_development"
    # Existing experiments: untagged (made by an older shrink) or left to the UI's GenAI guess get the tag;
    # a model-training kind someone chose stays.
    for name, before, after in (("old", None, "custom_model_development"),
                                ("guessed", "genai_development", "custom_model_development"),
                                ("chosen", "finetuning", "finetuning")):
        experiment = client.create_experiment(name, tags={kind: before} if before else None)
        assert ensure_experiment(uri, name) == experiment
        assert client.get_experiment(experiment).tags[kind] == after
