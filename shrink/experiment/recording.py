"""Everything MLflow for one trial: one run per trial, written through an explicit ``MlflowClient``
(no global MLflow state, so trials sharing a process never collide), in few batched writes.

What is written is the schema in docs/ARCHITECTURE.md, which ``shrink report`` reads. Any logging
failure raises :class:`RecordingError` naming the tracking URI and the cause.
"""

import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from shrink.experiment.errors import RecordingError
from shrink.experiment.tracking import ensure_experiment, resolve_tracking_uri

PARENT_TAG = "mlflow.parentRunId"


class TrialRecorder:
    """One trial's MLflow run. Open it with :meth:`create` or :meth:`reopen`."""

    def __init__(self, client, uri: str, run_id: str) -> None:
        self.client = client
        self.uri = uri
        self.run_id = run_id

    @classmethod
    def create(cls, uri: str | None, experiment_name: str, *, run_name: str, params: dict,
               tags: dict) -> "TrialRecorder":
        """Start a new run holding ``params`` (stringified) and ``tags``."""
        from mlflow.entities import Param

        uri = resolve_tracking_uri(uri)
        with _failing(uri, "creating the trial's run"):
            client = _client(uri)
            experiment_id = ensure_experiment(uri, experiment_name)
            run = client.create_run(experiment_id, run_name=run_name, tags=_strings(tags))
            client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return cls(client, uri, run.info.run_id)

    @classmethod
    def reopen(cls, uri: str | None, run_id: str) -> "TrialRecorder":
        """Continue an existing run (a resumed trial): mark it running again, drop an old failure."""
        uri = resolve_tracking_uri(uri)
        with _failing(uri, f"reopening run {run_id}"):
            client = _client(uri)
            run = client.get_run(run_id)
            if "shrink.failure" in run.data.tags:
                client.delete_tag(run_id, "shrink.failure")
            client.update_run(run_id, status="RUNNING")
        return cls(client, uri, run_id)

    def log_metrics(self, metrics: dict, *, step: int = 0, tags: dict | None = None) -> None:
        """Write ``metrics`` at ``step`` (and ``tags``) in one batch."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        with self._failing(f"logging {', '.join(sorted(metrics)) or 'tags'}"):
            self.client.log_batch(
                self.run_id,
                metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()],
                tags=[RunTag(k, v) for k, v in _strings(tags or {}).items()],
            )

    def log_artifacts(self, layers: pd.DataFrame, config: dict) -> None:
        """The per-layer table as ``layers.csv`` and the resolved config as ``config.json``."""
        with tempfile.TemporaryDirectory(prefix="shrink-artifacts-") as tmp:
            layers.to_csv(Path(tmp) / "layers.csv", index=False)
            (Path(tmp) / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            with self._failing("logging artifacts layers.csv and config.json"):
                self.client.log_artifacts(self.run_id, tmp)

    def finish(self, metrics: dict) -> None:
        """Write the final ``metrics`` and mark the run finished."""
        self.log_metrics(metrics, tags={"shrink.status": "finished"})
        with self._failing("ending the run"):
            self.client.set_terminated(self.run_id, status="FINISHED")

    def fail(self, reason: str) -> None:
        """Mark the run failed with ``reason`` (tag ``shrink.failure``)."""
        from mlflow.entities import RunTag

        with self._failing("recording the trial's failure"):
            self.client.log_batch(self.run_id, tags=[RunTag("shrink.status", "failed"),
                                                     RunTag("shrink.failure", reason[:5000])])
            self.client.set_terminated(self.run_id, status="FAILED")

    def _failing(self, what: str):
        return _failing(self.uri, f"{what} (run {self.run_id})")


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def _failing(uri: str, what: str) -> Iterator[None]:
    """Turn any error from MLflow into one RecordingError that says where and what."""
    try:
        yield
    except Exception as error:
        cause = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise RecordingError(f"MLflow at {uri}: {what} failed: {type(error).__name__}: {cause}") from error


def _strings(tags: dict) -> dict[str, str]:
    return {k: str(v) for k, v in tags.items() if v is not None}
