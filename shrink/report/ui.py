"""``shrink ui``: the MLflow UI on a sweep's tracking store, bound to 127.0.0.1 by default."""

import hashlib
import json
import os
import sys
from urllib.parse import urlencode

from mlflow import MlflowClient

from shrink.experiment import recording
from shrink.report.build import ARTIFACT_PATH, SUMMARY_TABLE
from shrink.report.runs import Sweep, find_sweep, list_sweeps


def _base(host: str, port: int) -> str:
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


# MLflow's UI opens a view saved in an experiment tag ``mlflow.sharedViewState.<key>`` (its "share" link) from
# the URL parameter viewStateShareKey: the search and the table's columns, which no other URL parameter
# selects. A search parameter in the URL (searchFilter, orderByKey, ...) makes the UI ignore the saved view.
SHARED_VIEW_TAG = "mlflow.sharedViewState."
# The trials table's columns beside the run name, in order: what varies, the result, then the data.
VIEW_COLUMNS = ("params.`strategy`", "params.`compression`", "params.`seed`", "metrics.`test_top1`",
                "metrics.`delta_top1`", "attributes.`Dataset`")
_RUN_NAME = "attributes.`Run Name`"  # the table's column ids are these names


def sweep_view(sweep: Sweep) -> tuple[str, str]:
    """(key, JSON) of the view of the sweep's trial runs: flat, sorted by name (MLflow nests child runs under
    their parent unless sorted by something other than the start time), with :data:`VIEW_COLUMNS`."""
    text = json.dumps({
        "searchFilter": recording.trials_filter(sweep.run_id),
        "orderByKey": "tags.`mlflow.runName`",
        "orderByAsc": True,
        "selectedColumns": list(VIEW_COLUMNS),
        "columnOrder": [_RUN_NAME, *VIEW_COLUMNS],
        "columnWidths": {_RUN_NAME: 280, "params.`strategy`": 150},
    }, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest(), text


def save_view(sweep: Sweep) -> None:
    """Tag the sweep's experiment with :func:`sweep_view`, which :func:`ui_url` opens (rewriting it is a no-op)."""
    key, text = sweep_view(sweep)
    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    client.set_experiment_tag(sweep.experiment_id, SHARED_VIEW_TAG + key, text)


def ui_url(host: str, port: int, sweep: Sweep | None = None) -> str:
    """The UI's address; with a sweep, its runs table in the model-training view as :func:`sweep_view` says
    (saved by :func:`save_view`)."""
    base = _base(host, port)
    if sweep is None:
        return base
    query = urlencode({"viewStateShareKey": sweep_view(sweep)[0], "workflowType": "machine_learning"})
    return f"{base}/#/experiments/{sweep.experiment_id}/runs?{query}"


def summary_url(host: str, port: int, sweep: Sweep) -> str:
    """The summary table that ``shrink report`` logs to the sweep's parent run, beside report.md and the
    figures, as the UI shows it (a table)."""
    return (f"{_base(host, port)}/#/experiments/{sweep.experiment_id}/runs/{sweep.run_id}/artifacts/{ARTIFACT_PATH}/"
            f"{SUMMARY_TABLE}?workflowType=machine_learning")


def server_command(tracking_uri: str, host: str, port: int) -> list[str]:
    """``mlflow server`` on the store with one worker (a light process), bound to ``host``."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
            "--host", host, "--port", str(port), "--workers", "1"]


def announce(tracking_uri: str, host: str, port: int, names: tuple[str, ...] = ()) -> list[str]:
    """What ``shrink ui`` prints before serving, each sweep's view saved: the UI's address opening the first
    sweep's trial runs (``names``; default the newest sweep, if the store has any), one line per further
    sweep with its own runs table (MLflow's search has no "or": one table cannot hold two sweeps' runs),
    and where the first sweep's run holds the report (of all of them, after ``shrink report A B``)."""
    if names:
        sweeps = [find_sweep(tracking_uri, name) for name in names]
    else:  # the newest sweep, if any: a store without sweeps is still worth browsing
        sweeps = list_sweeps(tracking_uri)[:1]
    for sweep in sweeps:
        save_view(sweep)
    lines = [f"MLflow UI for {tracking_uri} at {ui_url(host, port, sweeps[0] if sweeps else None)} (Ctrl-C stops it)"]
    lines += [f"sweep {sweep.name}'s trial runs: {ui_url(host, port, sweep)}" for sweep in sweeps[1:]]
    if sweeps:
        command = " ".join(["shrink report", *(sweep.name for sweep in sweeps)]) if len(sweeps) > 1 else "shrink report"
        lines.append(f"sweep {sweeps[0].name}'s summary table, report.md and figures (after `{command}`): "
                     f"{summary_url(host, port, sweeps[0])}")
    if host not in ("127.0.0.1", "localhost"):
        lines.append(f"listening on {host}: reachable from other machines")
    return lines


def serve(tracking_uri: str, host: str, port: int, names: tuple[str, ...] = (), echo=print) -> None:
    """Print :func:`announce`'s lines, then replace this process with the MLflow server (it runs until
    stopped). A store that is already a server (``http(s)://``) is not served again: its URL is printed."""
    if tracking_uri.startswith(("http://", "https://")):
        echo(f"The tracking store is an MLflow server already: open {tracking_uri}")
        return
    for line in announce(tracking_uri, host, port, names):
        echo(line)
    sys.stdout.flush()
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    os.execve(sys.executable, server_command(tracking_uri, host, port), env)
