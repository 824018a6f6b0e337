"""Read a sweep's trial runs from MLflow into one table with a row per trial.

The input is the MLflow schema of docs/ARCHITECTURE.md: a sweep parent run tagged
``shrink.kind=sweep`` and ``shrink.sweep=<name>``, and trial runs nested under it
(``mlflow.parentRunId``) with the trial config as params, ``shrink.*`` tags and final metrics.
"""

import gc
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from shrink.experiment import recording
from shrink.experiment.errors import ConfigError
from shrink.experiment.tracking import probe_tracking
from shrink.report.control import CONTROL_DELTAS, with_control_deltas

# A row's trial, in the report's sort order (a sweep's trials differ in recording.SWEEP_TRIAL_KEY).
TRIAL_COLUMNS = ("dataset", "model", "strategy", "compression", "seed")
FINAL_METRICS = (
    "dense_val_top1", "dense_val_top5", "dense_test_top1", "dense_test_top5",
    "pruned_val_top1", "pruned_val_top5", "test_top1", "test_top5", "test_loss",
    "delta_top1", "delta_top5", "size", "nonzero_size", "compression_ratio", "macs",
    "nonzero_macs", "theoretical_speedup", "measured_speedup", "measured_speedup_b1", "epochs_run",
    "best_epoch", "stopped_early", "wall_time_s",
)
COLUMNS = ("run_id", *TRIAL_COLUMNS, "base_name", "status", "failure", *FINAL_METRICS, *CONTROL_DELTAS,
           *recording.TRIAL_TAGS)
SORT_KEYS = [*TRIAL_COLUMNS, "run_id"]
PAGE_SIZE = 1000  # runs per search request (MLflow allows up to 50,000; larger is not faster)


class SweepNotFound(LookupError):
    """The sweep asked for cannot be read: no store (or one that does not answer), no such sweep, or no trial
    runs yet."""


@dataclass(frozen=True)
class Sweep:
    """A sweep's parent run: where its trials are found and where report artifacts go."""

    name: str
    run_id: str
    experiment_id: str
    tracking_uri: str
    start_time: int  # milliseconds since the epoch, as MLflow records it
    methods: tuple[str, ...] | None = None  # the proposed methods it recorded; None: not recorded


def _client(tracking_uri: str):
    """An MLflow client for an existing store that answers: a missing sqlite file is an error, not a new store,
    and so is a server or database that does not answer within seconds (MLflow's client retries for minutes)."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise SweepNotFound(
                f"no MLflow store at {path}: run `shrink sweep` first, or pass --tracking-uri"
            )
    try:
        probe_tracking(tracking_uri, write=False)
    except ConfigError as error:
        raise SweepNotFound(str(error)) from None
    return MlflowClient(tracking_uri=tracking_uri)


def _paged(search, progress=None):
    """Every item of a paginated MLflow search; ``search(page_token)`` returns one page and
    ``progress(n)``, when given, hears the number of items read after each page."""
    items, token = [], None
    while True:
        page = search(token)
        items.extend(page)
        if progress is not None:
            progress(len(items))
        token = page.token
        if not token:
            return items


def list_sweeps(tracking_uri: str) -> list[Sweep]:
    """Every sweep parent run in the store's active experiments, newest first."""
    client = _client(tracking_uri)
    experiments = _paged(lambda token: client.search_experiments(page_token=token))
    if not experiments:
        return []
    runs = _paged(lambda token: client.search_runs(
        [e.experiment_id for e in experiments],
        filter_string=recording.sweeps_filter(),
        order_by=["attributes.start_time DESC"],
        max_results=PAGE_SIZE,
        page_token=token,
    ))
    return [
        Sweep(
            name=recording.sweep_name(run),
            run_id=run.info.run_id,
            experiment_id=run.info.experiment_id,
            tracking_uri=tracking_uri,
            start_time=run.info.start_time,
            methods=recording.sweep_methods(run),
        )
        for run in runs
    ]


def find_sweep(tracking_uri: str, name: str | None = None) -> Sweep:
    """The newest sweep called ``name``, or the newest sweep of all when ``name`` is None."""
    sweeps = list_sweeps(tracking_uri)
    if not sweeps:
        raise SweepNotFound(f"no sweep runs in {tracking_uri}: run `shrink sweep` first")
    if name is None:
        return sweeps[0]
    for sweep in sweeps:
        if sweep.name == name:
            return sweep
    available = ", ".join(dict.fromkeys(s.name for s in sweeps))
    raise SweepNotFound(f"unknown sweep {name!r} in {tracking_uri}; available: {available}")


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while reading runs: MLflow's SQL store builds an ORM
    object per param, tag and metric, and the collections those allocations trigger (each one
    scanning every run read so far) made reading 10,000 runs 2-4x slower (bench/report.py)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fetch_trial_runs(sweep: Sweep, progress=None) -> list:
    """The MLflow runs nested under the sweep's parent run (one search, paginated).

    ``progress(n)`` is called with the number of runs read so far after each page.
    """
    client = _client(sweep.tracking_uri)
    with _gc_paused():
        return _paged(lambda token: client.search_runs(
            [sweep.experiment_id],
            filter_string=recording.trials_filter(sweep.run_id),
            max_results=PAGE_SIZE,
            page_token=token,
        ), progress)


def _number(text: str | None, kind=float):
    return kind(float(text)) if text not in (None, "") else None


def _rows(run) -> list[dict]:
    """A run's table rows: one, or a shared dense control's one per strategy it counts for."""
    row = _row(run)
    return [{**row, "strategy": strategy} for strategy in recording.control_strategies(run)] or [row]


def _row(run) -> dict:
    """A run's table row: identity, status, final metrics, shrink tags, other params."""
    params, metrics = run.data.params, run.data.metrics
    status, failure = recording.trial_status(run)
    return {
        "run_id": run.info.run_id,
        "dataset": params.get("dataset"),
        "model": params.get("model"),
        "strategy": params.get("strategy"),
        "compression": _number(params.get("compression")),
        "seed": _number(params.get("seed"), int),
        "base_name": "" if params.get("base_name") in (None, "None") else params["base_name"],
        "status": status,
        "failure": failure,
        **{name: metrics.get(name) for name in FINAL_METRICS},
        **recording.trial_tag_values(run),
        **{f"params.{k}": v for k, v in params.items()
           if k not in (*TRIAL_COLUMNS, "base_name", recording.CONTROL_PARAM)},
    }


def trials_frame(runs: list) -> pd.DataFrame:
    """One row per trial of the grid (a run, or a shared dense control's run once per strategy it counts for),
    in a fixed column and row order.

    Columns: ``run_id``, the trial identity (``dataset, model, strategy, compression, seed``), ``base_name``
    (the sweep's name for the trial's base setting, ``bases:``; empty without),
    ``status`` (``finished``, ``failed`` or ``running``) and ``failure``, the final metrics
    (NaN where a trial did not log them), the differences from the fine-tuned control
    (:func:`~shrink.report.control.with_control_deltas`), the ``shrink.*`` tags without their prefix, then every
    other param as ``params.<name>`` (strings, as MLflow stores them). Rows are sorted by
    identity then run id, so the same runs always give the same table.
    """
    with _gc_paused():
        rows = [row for run in runs for row in _rows(run)]
    extra = sorted({key for row in rows for key in row} - set(COLUMNS))
    columns = [*COLUMNS, *extra]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.astype({"compression": "float64", "seed": "Int64"})
    frame = frame.astype({name: "float64" for name in FINAL_METRICS})
    strings = [c for c in columns if c not in ("compression", "seed", *FINAL_METRICS, *CONTROL_DELTAS)]
    frame = frame.astype({c: "str" for c in strings})
    frame = frame.sort_values(SORT_KEYS, na_position="last", kind="stable").reset_index(drop=True)
    return with_control_deltas(frame)


def load_trials(sweep: Sweep, progress=None) -> pd.DataFrame:
    """The sweep's per-trial table (see :func:`trials_frame`); a sweep without trial runs is
    an error."""
    runs = fetch_trial_runs(sweep, progress)
    if not runs:
        raise SweepNotFound(f"sweep {sweep.name!r} (run {sweep.run_id}) has no trial runs yet")
    return trials_frame(runs)
