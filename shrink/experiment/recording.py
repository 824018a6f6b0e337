"""The MLflow schema of trial and sweep runs (docs/ARCHITECTURE.md), and the one writer of a trial's run.

This module owns every name of that schema that crosses a subpackage boundary: tag names, statuses,
the filters that find a sweep, its trials and a trial's finished run, and how a run is marked failed or
interrupted. The orchestrator and ``shrink report`` use these; none spells a tag itself.

A trial's run is written through an explicit ``MlflowClient`` (no global MLflow state, so trials sharing
a process never collide), in few batched writes. Any logging failure raises :class:`RecordingError`
naming the tracking URI and the cause.

Every write may be repeated (an HTTP retry whose first try arrived, a trial retried from its checkpoint)
and then changes nothing: a metric point is stamped once, before its first write (:class:`EpochPoints`;
MLflow's SQL store keeps one of identical points: key, step, timestamp, value), params and tags are
written with the same values, dataset inputs are kept once per run by the store, and a run whose
creation was repeated leaves an orphan without params that the sweep deletes (:func:`is_orphan`).
"""

import contextlib
import dataclasses
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd

from shrink.experiment.errors import RecordingError
from shrink.experiment.tracking import ensure_experiment, resolve_tracking_uri


class Tag:
    """Tag names that tell runs apart and say how they ended."""

    KIND = "shrink.kind"  # Kind.TRIAL or Kind.SWEEP
    SWEEP = "shrink.sweep"  # the sweep's name, on its parent run and on each of its trials
    STATUS = "shrink.status"  # Status.FINISHED or Status.FAILED
    FAILURE = "shrink.failure"  # why a run failed
    PARENT = "mlflow.parentRunId"  # nests a trial's run under its sweep's run
    METHODS = "shrink.methods"  # a sweep's proposed methods (JSON list), which the checklist asks matched baselines for
    LATENCY_WINDOW = "shrink.latency_window"  # when a sweep's exclusive phase timed the trial: "<start> <end>" (Unix s)


class Kind(StrEnum):
    TRIAL = "trial"
    SWEEP = "sweep"


class Status(StrEnum):
    """A trial run's outcome: the ``shrink.status`` tag, or ``RUNNING`` derived from MLflow's run status."""

    FINISHED = "finished"
    FAILED = "failed"
    RUNNING = "running"


class TrialEnd(StrEnum):
    """How a trial's process ended, as the orchestrator reports it: ``FINISHED`` (its run is finished) or
    ``DIVERGED`` (its run is recorded failed, and the trial is done: a retry would diverge again)."""

    FINISHED = "finished"
    DIVERGED = "diverged"


# A trial's artifact holding what each pruning round kept, layer by layer (``shrink.pruning.rounds``).
ROUNDS_ARTIFACT = "pruning_rounds.json"
# The fields of a ``shrink.metrics.Scores``; :func:`score_metrics` gives them their MLflow names.
SCORE_FIELDS = ("top1", "top5", "loss", "n")


# What a trial ran with, each as tag ``shrink.<name>`` (the report's columns of the same names).
TRIAL_TAGS = ("base_sha256", "base_source", "split_hash", "git_commit", "versions", "device", "hardware", "amp",
              "channels_last", "compile", "workers", "decode")
# The params that tell a sweep's trials apart (the sweep fixes every other field for all of its trials).
SWEEP_TRIAL_KEY = ("model", "strategy", "compression", "seed", "base_name")
# The param of a sweep's shared dense control: the strategies whose compression-1 trial it is (JSON list).
CONTROL_PARAM = "control_for"
INTERRUPTED = "interrupted: the sweep's driver stopped"


def score_metrics(prefix: str, scores, fields: tuple[str, ...] = SCORE_FIELDS) -> dict:
    """``<prefix>_<field>`` for each of ``fields`` of ``scores`` (a ``shrink.metrics.Scores``): the one place
    where evaluation scores get their MLflow names (``val_top1``, ``dense_test_top5``, ``test_n``, ...)."""
    return {f"{prefix}_{name}": getattr(scores, name) for name in fields}


def epoch_metrics(epoch) -> dict:
    """The per-epoch metrics of a trial's run, from a ``shrink.experiment.loop.Epoch``."""
    return {"train_loss": epoch.stats.loss, **score_metrics("val", epoch.val, ("top1", "top5", "loss")),
            "epoch_time_s": epoch.seconds, "images_per_s": epoch.stats.images_per_s}


def trial_run_name(*, model: str, strategy: str, compression: float, seed: int, base_name: str | None = None,
                   control: bool = False) -> str:
    """A trial run's name, what varies within a sweep first (MLflow's runs table cuts long names):
    ``global-magnitude x8 s1 small-mlp``, ``... s1@<base name> ...`` with named bases, ``dense-control x1 s1
    small-mlp`` for a sweep's shared dense control (``control``). Nothing parses it: runs are told apart by
    their params (:data:`SWEEP_TRIAL_KEY`)."""
    base = f"@{base_name}" if base_name else ""
    return f"{'dense-control' if control else strategy} x{compression:g} s{seed}{base} {model}"


@dataclass(frozen=True)
class DataInput:
    """One split a trial reads, logged as an MLflow dataset input (the runs table's Dataset column): named
    ``<dataset>/<split>``, its digest the carve-out's split hash, its context the split."""

    dataset: str
    split: str  # train, val or test
    split_hash: str
    examples: int

    def to_mlflow(self):
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        dataset = Dataset(name=f"{self.dataset}/{self.split}", digest=self.split_hash, source_type="shrink",
                          source=json.dumps({"dataset": self.dataset, "split": self.split}),
                          profile=json.dumps({"num_rows": self.examples}))
        return DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, self.split)])


def trial_tags(*, sweep: str | None, parent_run_id: str | None, **described) -> dict:
    """The tags a trial's run starts with; ``described`` gives the values of :data:`TRIAL_TAGS`."""
    unknown = set(described) - set(TRIAL_TAGS)
    if unknown:
        raise ValueError(f"not trial tags: {', '.join(sorted(unknown))}")
    return {Tag.KIND: Kind.TRIAL, Tag.SWEEP: sweep, Tag.PARENT: parent_run_id,
            **{_described(name): value for name, value in described.items()}}


def trial_tag_values(run) -> dict:
    """The :data:`TRIAL_TAGS` of a trial run by name (None where missing)."""
    return {name: run.data.tags.get(_described(name)) for name in TRIAL_TAGS}


def _described(name: str) -> str:
    return f"shrink.{name}"


def sweep_tags(name: str, methods: tuple[str, ...]) -> dict:
    """The tags of a sweep's parent run: its name and its proposed methods."""
    return {Tag.KIND: Kind.SWEEP, Tag.SWEEP: name, Tag.METHODS: json.dumps(list(methods))}


def sweep_methods(run) -> tuple[str, ...] | None:
    """The proposed methods a sweep's parent run recorded; None for a sweep recorded before they were."""
    text = run.data.tags.get(Tag.METHODS)
    return None if text is None else tuple(json.loads(text))


def sweeps_filter(name: str | None = None) -> str:
    """The MLflow search filter for sweep parent runs (of sweep ``name`` when given)."""
    query = f"tags.`{Tag.KIND}` = '{Kind.SWEEP}'"
    return query if name is None else f"{query} and tags.`{Tag.SWEEP}` = '{name}'"


def trials_filter(parent_run_id: str, also: str = "") -> str:
    """The MLflow search filter for the runs nested under ``parent_run_id`` (narrowed by ``also``)."""
    query = f"tags.`{Tag.PARENT}` = '{parent_run_id}'"
    return f"{query} and {also}" if also else query


def sweep_name(run) -> str:
    """The sweep a run belongs to."""
    return run.data.tags.get(Tag.SWEEP, "")


def trial_status(run) -> tuple[str, str | None]:
    """(status, failure reason) of a trial run: its ``shrink.status`` tag; without one, ``running``
    while MLflow says so, else failed (a run that ended without recording its outcome)."""
    tags = run.data.tags
    if Tag.STATUS in tags:
        return tags[Tag.STATUS], tags.get(Tag.FAILURE)
    if run.info.status in ("RUNNING", "SCHEDULED"):
        return Status.RUNNING, None
    return Status.FAILED, f"MLflow run ended {run.info.status} without a {Tag.STATUS} tag"


def is_finished(run) -> bool:
    return run.data.tags.get(Tag.STATUS) == Status.FINISHED


def sweep_trial_key(run) -> tuple:
    """The params that tell this run's trial apart from the other trials of its sweep."""
    return tuple(run.data.params.get(key) for key in SWEEP_TRIAL_KEY)


def control_strategies(run) -> tuple[str, ...]:
    """The strategies a sweep's shared dense control counts for; () for any other run (and for runs recorded
    before controls were shared)."""
    text = run.data.params.get(CONTROL_PARAM)
    return tuple(json.loads(text)) if text else ()


def child_runs(client, experiment_id: str, parent_run_id: str, also: str = "") -> list:
    """Every run nested under ``parent_run_id`` (all pages), optionally narrowed by the filter ``also``."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], trials_filter(parent_run_id, also), page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def record_latency(uri: str, run_id: str, metrics: dict, params: dict, window: tuple[float, float]) -> None:
    """Log a finished trial's measured speedup, taken after it ended (``shrink.experiment.latency``): the
    figures, the timing conditions as params, and when it was timed (tag :data:`Tag.LATENCY_WINDOW`, start
    and end in Unix seconds). Logging it again with the same values changes nothing."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    with failing(uri, f"logging the measured speedup (run {run_id})"):
        _client(uri).log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                               params=[Param(k, v) for k, v in params.items()],
                               tags=[RunTag(Tag.LATENCY_WINDOW, f"{window[0]:.3f} {window[1]:.3f}")])


def _trial_key_filter(params: dict) -> str:
    """The filter for the runs of the trial with these (flat) ``params`` (told apart by :data:`SWEEP_TRIAL_KEY`)."""
    return " and ".join(f"params.`{name}` = '{params[name]}'" for name in SWEEP_TRIAL_KEY)


def find_finished_run(client, experiment_id: str, parent_run_id: str, params: dict):
    """The finished run of the trial with these (flat) ``params`` in the sweep under ``parent_run_id``,
    or None."""
    key = f"tags.`{Tag.STATUS}` = '{Status.FINISHED}' and {_trial_key_filter(params)}"
    runs = client.search_runs([experiment_id], trials_filter(parent_run_id, key), max_results=1)
    return runs[0] if runs else None


def mark_errored(client, experiment_id: str, parent_run_id: str, params: dict, reason: str) -> int:
    """Mark the runs that the trial with these (flat) ``params`` left running failed with ``reason`` (a trial
    whose retries ran out, maybe because it could not write its failure itself); how many there were."""
    running = child_runs(client, experiment_id, parent_run_id,
                         f"attributes.status = 'RUNNING' and {_trial_key_filter(params)}")
    for run in running:
        mark_failed(client, run.info.run_id, reason)
    return len(running)


def is_orphan(run) -> bool:
    """A trial run without the params that tell it apart: a repeated ``create_run`` (its first response was
    lost) or a trial that stopped before writing its params. The trial goes on, or starts over, in another run."""
    return not is_finished(run) and all(key not in run.data.params for key in SWEEP_TRIAL_KEY)


def reference_rounds(uri: str | None, run_id: str, expected: dict) -> list:
    """The ``PruningRound``s recorded by run ``run_id``, a finished trial whose (flat) params agree with
    ``expected``; ``ValueError`` saying what does not."""
    from mlflow.exceptions import MlflowException

    from shrink.pruning.rounds import PruningRound

    uri = resolve_tracking_uri(uri)
    client = _client(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ValueError(f"reference_run {run_id}: no such run at {uri}") from None
    if not is_finished(run):
        raise ValueError(f"reference_run {run_id} has not finished (status {trial_status(run)[0]})")
    differ = sorted(k for k, v in expected.items() if run.data.params.get(k) != str(v))
    if differ:
        theirs = ", ".join(f"{k}={run.data.params.get(k)}" for k in differ)
        raise ValueError(f"reference_run {run_id} is another trial: {theirs}")
    with tempfile.TemporaryDirectory(prefix="shrink-rounds-") as tmp:
        try:
            path = client.download_artifacts(run_id, ROUNDS_ARTIFACT, tmp)
        except (MlflowException, OSError):
            raise ValueError(f"reference_run {run_id} recorded no {ROUNDS_ARTIFACT} (run before shrink kept it)") from None
        return [PruningRound.from_dict(values) for values in json.loads(Path(path).read_text())]


def mark_failed(client, run_id: str, reason: str, *, status: str = "FAILED") -> None:
    """Tag the run failed with ``reason`` and end it with MLflow ``status`` (``FAILED`` or ``KILLED``)."""
    from mlflow.entities import RunTag

    client.log_batch(run_id, tags=[RunTag(Tag.STATUS, Status.FAILED), RunTag(Tag.FAILURE, reason[:5000])])
    client.set_terminated(run_id, status=status)


def mark_interrupted(client, run_id: str) -> None:
    """A trial run left running by a sweep driver that stopped: failed, ``KILLED``."""
    mark_failed(client, run_id, INTERRUPTED, status="KILLED")


@dataclass(frozen=True)
class EpochPoints:
    """One epoch's metric points, stamped when they are made: written again (after a retry), they are the
    same points, which the store keeps once. A trial's checkpoint holds its last epoch's points."""

    step: int
    metrics: dict[str, float]
    timestamp_ms: int

    @classmethod
    def stamped(cls, step: int, metrics: dict) -> "EpochPoints":
        return cls(step, {k: float(v) for k, v in metrics.items()}, int(time.time() * 1000))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "EpochPoints":
        return cls(**values)


class TrialRecorder:
    """One trial's MLflow run. Open it with :meth:`create` or :meth:`reopen`."""

    def __init__(self, client, uri: str, run_id: str) -> None:
        self.client = client
        self.uri = uri
        self.run_id = run_id

    @classmethod
    def create(cls, uri: str | None, experiment_name: str, *, run_name: str, params: dict, tags: dict,
               inputs: tuple[DataInput, ...] = ()) -> "TrialRecorder":
        """Start a new run holding ``params`` (stringified), ``tags`` and the dataset ``inputs``."""
        from mlflow.entities import Param

        uri = resolve_tracking_uri(uri)
        with failing(uri, "creating the trial's run"):
            client = _client(uri)
            experiment_id = ensure_experiment(uri, experiment_name)
            run = client.create_run(experiment_id, run_name=run_name, tags=_strings(tags))
            client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
            if inputs:
                _log_inputs(client, run.info.run_id, [data.to_mlflow() for data in inputs])
        return cls(client, uri, run.info.run_id)

    @classmethod
    def reopen(cls, uri: str | None, run_id: str) -> "TrialRecorder":
        """Continue an existing run (a resumed trial): mark it running again, drop an old outcome."""
        uri = resolve_tracking_uri(uri)
        with failing(uri, f"reopening run {run_id}"):
            client = _client(uri)
            run = client.get_run(run_id)
            for tag in (Tag.STATUS, Tag.FAILURE):  # running again: neither failed nor finished
                if tag in run.data.tags:
                    client.delete_tag(run_id, tag)
            client.update_run(run_id, status="RUNNING")
        return cls(client, uri, run_id)

    def log_metrics(self, metrics: dict, *, step: int = 0, tags: dict | None = None) -> None:
        """Write ``metrics`` at ``step`` (and ``tags``) in one batch, stamped now."""
        self.log_points(EpochPoints.stamped(step, metrics), tags=tags)

    def log_points(self, points: EpochPoints, *, tags: dict | None = None) -> None:
        """Write ``points`` (and ``tags``) in one batch; again, it changes nothing."""
        from mlflow.entities import Metric, RunTag

        with self._failing(f"logging {', '.join(sorted(points.metrics)) or 'tags'}"):
            self.client.log_batch(
                self.run_id,
                metrics=[Metric(k, v, points.timestamp_ms, points.step) for k, v in points.metrics.items()],
                tags=[RunTag(k, v) for k, v in _strings(tags or {}).items()],
            )

    def log_params(self, params: dict[str, str]) -> None:
        """Params known only at the trial's end (how its speedup was timed)."""
        from mlflow.entities import Param

        with self._failing(f"logging {', '.join(sorted(params))}"):
            self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def log_artifacts(self, layers: pd.DataFrame, config: dict, rounds: list) -> None:
        """The per-layer table as ``layers.csv``, the resolved config as ``config.json`` and what each pruning
        round kept (``PruningRound``s) as :data:`ROUNDS_ARTIFACT`."""
        with tempfile.TemporaryDirectory(prefix="shrink-artifacts-") as tmp:
            layers.to_csv(Path(tmp) / "layers.csv", index=False)
            (Path(tmp) / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            (Path(tmp) / ROUNDS_ARTIFACT).write_text(json.dumps([r.to_dict() for r in rounds], indent=2) + "\n")
            with self._failing(f"logging artifacts layers.csv, config.json and {ROUNDS_ARTIFACT}"):
                self.client.log_artifacts(self.run_id, tmp)

    def finish(self, metrics: dict) -> None:
        """Write the final ``metrics`` and mark the run finished."""
        self.log_metrics(metrics, tags={Tag.STATUS: Status.FINISHED})
        with self._failing("ending the run"):
            self.client.set_terminated(self.run_id, status="FINISHED")

    def fail(self, reason: str) -> None:
        """Mark the run failed with ``reason`` (tag ``shrink.failure``)."""
        with self._failing("recording the trial's failure"):
            mark_failed(self.client, self.run_id, reason)

    def _failing(self, what: str):
        return failing(self.uri, f"{what} (run {self.run_id})")


# What SQLite and PostgreSQL say when a row with the same unique key was inserted meanwhile.
_UNIQUE_VIOLATIONS = ("UNIQUE constraint failed", "duplicate key value violates unique constraint")


def _log_inputs(client, run_id: str, datasets: list) -> None:
    """``log_inputs``, once more when a concurrent trial inserted the same dataset (experiment, name, digest)
    between the store's lookup and its insert: the second call finds that row and links it to this run."""
    from mlflow.exceptions import MlflowException

    try:
        client.log_inputs(run_id, datasets=datasets)
    except MlflowException as error:
        if not any(violation in str(error) for violation in _UNIQUE_VIOLATIONS):
            raise
        client.log_inputs(run_id, datasets=datasets)


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def failing(uri: str, what: str) -> Iterator[None]:
    """Turn any error from MLflow into one RecordingError that says where and what."""
    try:
        yield
    except Exception as error:
        cause = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise RecordingError(f"MLflow at {uri}: {what} failed: {type(error).__name__}: {cause}") from error


def _strings(tags: dict) -> dict[str, str]:
    return {k: str(v) for k, v in tags.items() if v is not None}
