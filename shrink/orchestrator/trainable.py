"""One trial under Ray Tune: ``run_trial`` with checkpoints and per-epoch metrics carried by Tune reports.

What Tune carries to a trial is one :class:`TrialTask` (the trial's config, the sweep's Tune folder and
each worker's resources), serialized once at the boundary: :meth:`TrialTask.to_tune` builds the
``param_space`` entry, :meth:`TrialTask.from_tune` is the trainable's first line. What comes back is
Tune results keyed by :data:`STATUS` (a ``recording.TrialEnd``) and :data:`NODE`.

Tune restarts a trial whose worker died from its last reported checkpoint (``FailureConfig``); a
trial that diverges is reported as a result with ``shrink_status: diverged`` and returns normally,
so Tune records it as done and does not retry it.
"""

import dataclasses
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

import ray
from mlflow.tracking import MlflowClient
from ray import tune

from shrink.experiment import ConfigError, DirectoryCheckpointer, TrialConfig, TrialDiverged, recording, run_trial
from shrink.experiment.recording import TrialEnd
from shrink.orchestrator.spec import Resources

STATUS = "shrink_status"  # result key: a recording.TrialEnd
NODE = "node_id"  # result key: the Ray node the trial reported from
TASK = "task"  # the param_space key holding each trial's TrialTask


@dataclass(frozen=True)
class TrialTask:
    """Everything a Tune trial is given: the trial, the sweep's Tune folder (``storage``), what each of its
    workers holds (``worker``: the sweep's resources) and, for a matched trial that follows its reference's
    rounds, the reference strategy (``reference``) whose finished trial of the same cell it reads."""

    trial: TrialConfig
    storage: str
    worker: Resources
    reference: str | None = None

    def to_tune(self) -> dict:
        """Plain values for Tune's ``param_space`` (one grid point)."""
        return {"trial": self.trial.to_dict(), "storage": self.storage, "worker": dataclasses.asdict(self.worker),
                "reference": self.reference}

    @classmethod
    def from_tune(cls, config: Mapping) -> "TrialTask":
        """The task of a Tune trial's ``config`` (the trainable's argument, or ``ray.tune.Trial.config``)."""
        task = config[TASK]
        return cls(TrialConfig.from_dict(task["trial"]), task["storage"], Resources(**task["worker"]),
                   task.get("reference"))

    def resolved(self) -> TrialConfig:
        """The trial, with ``reference_run`` set to its reference's finished run in the same sweep (looked up
        now, when the reference phase is over: a reference that reran has a new run); ``ConfigError`` when
        that trial has not finished (the matched trial errors, and ``--resume`` retries it)."""
        if self.reference is None:
            return self.trial
        trial = self.trial
        with recording.failing(trial.tracking_uri, f"finding the {self.reference} trial's run"):
            client = MlflowClient(tracking_uri=trial.tracking_uri)
            experiment = client.get_experiment_by_name(trial.experiment_name)
            run = recording.find_finished_run(client, experiment.experiment_id, trial.parent_run_id,
                                              {**trial.flat(), "strategy": self.reference})
        if run is None:
            raise ConfigError(f"{trial.strategy} at {trial.compression:g}x, seed {trial.seed}: the {self.reference} "
                              "trial it follows has not finished in this sweep", key="reference_run")
        return dataclasses.replace(trial, reference_run=run.info.run_id)


class ReportingCheckpointer:
    """A ``Checkpointer`` whose saved state travels with the next report through ``api``: ``ray.tune`` for a
    trial in one process, ``ray.train`` for a data-parallel trial's workers (both offer ``get_checkpoint``,
    ``Checkpoint`` and ``report``)."""

    def __init__(self, api=tune):
        self._api = api
        self._unreported: str | None = None  # folder holding the state saved since the last report

    def load(self) -> dict | None:
        """The state of the checkpoint Ray restored this trial from, if any."""
        checkpoint = self._api.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return DirectoryCheckpointer(folder).load()

    def save(self, state: dict) -> None:
        """Write ``state`` now (the live tensors change in the next epoch); it is reported next."""
        self._discard()
        self._unreported = tempfile.mkdtemp(prefix="shrink-ckpt-")
        DirectoryCheckpointer(self._unreported).save(state)

    def report(self, epoch: int, metrics: Mapping) -> None:
        """The ``reporter`` of ``run_trial``: one report per epoch, with the saved state if any."""
        checkpoint = self._api.Checkpoint.from_directory(self._unreported) if self._unreported else None
        self._api.report({**metrics, "epoch": epoch, NODE: node_id()}, checkpoint=checkpoint)
        self._discard()

    def _discard(self) -> None:
        if self._unreported:
            shutil.rmtree(self._unreported, ignore_errors=True)
            self._unreported = None


def train(config: dict) -> None:
    """Tune function trainable of a trial in one process.

    Every report names the Ray node it comes from; the last one carries the final metrics and
    ``shrink_status``.
    """
    task = TrialTask.from_tune(config)
    checkpointer = ReportingCheckpointer()
    finished = finished_run_metrics(task.trial)
    if finished is not None:
        result = final_result(finished)
    else:
        trial = task.resolved()
        result = run_to_end(lambda: run_trial(trial, checkpointer=checkpointer, reporter=checkpointer.report))
    tune.report({**result, NODE: node_id()})


def run_to_end(run) -> dict:
    """The final result of ``run()`` (a trial's final metrics): finished, or diverged (done, not retried)."""
    try:
        return final_result(run())
    except TrialDiverged as error:
        return {STATUS: TrialEnd.DIVERGED.value, "failure": str(error)}


def final_result(metrics: Mapping) -> dict:
    """The last report of a trial that finished with ``metrics``."""
    return {STATUS: TrialEnd.FINISHED.value, **metrics}


def node_id() -> str:
    return ray.get_runtime_context().get_node_id()


def finished_run_metrics(trial: TrialConfig) -> dict | None:
    """Final metrics of this trial's finished MLflow run in the same sweep, if one exists.

    Tune saves its experiment state every few seconds, so after the driver is killed a trial that
    finished after the last save restarts from scratch; this finds its run instead of training again. A
    trial retried after its final metrics arrived but its run's end did not (the store went away between
    the two writes) finds it too, and ends it: it would write its final metrics a second time.
    """
    if trial.parent_run_id is None:
        return None
    with recording.failing(trial.tracking_uri, "looking for the trial's finished run"):
        client = MlflowClient(tracking_uri=trial.tracking_uri)
        experiment = client.get_experiment_by_name(trial.experiment_name)
        run = recording.find_finished_run(client, experiment.experiment_id, trial.parent_run_id, trial.flat())
        if run is not None and run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, status="FINISHED")
    return dict(run.data.metrics) if run is not None else None
