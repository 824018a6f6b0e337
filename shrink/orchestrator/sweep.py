"""Run a sweep: make the bases once, fan the grid out with Ray Tune, record everything in MLflow.

The driver (this process) validates the spec, creates the MLflow store and experiment, opens the
sweep's parent run with the spec as ``sweep.yaml``, has every missing base made by Ray tasks
(``shrink.orchestrator.base_tasks``), then hands the grid to ``tune.Tuner``; every trial is a nested MLflow
run written by ``run_trial`` in a Ray worker.
"""

import contextlib
import dataclasses
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import ray
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from ray import tune

from shrink.experiment import TrialConfig, recording
from shrink.experiment.errors import ConfigError, RecordingError
from shrink.experiment.recording import TrialEnd
from shrink.experiment.tracking import ensure_experiment, probe_tracking, resolve_tracking_uri, shown_uri
from shrink.orchestrator.base_tasks import make_bases
from shrink.orchestrator.checkpoints import KeepLatestSaved
from shrink.orchestrator.doctor import check_gpu_nodes
from shrink.orchestrator.progress import Progress
from shrink.orchestrator.spec import (
    CLUSTER_JOB_ENV,
    SpecError,
    SweepSpec,
    absolute_tracking_uri,
    check_data,
    check_resources,
    local_resources,
    trial_label,
)
from shrink.orchestrator.ray_train import train_data_parallel
from shrink.orchestrator.timing import LATENCY, time_saved_pairs
from shrink.orchestrator.trainable import NODE, STATUS, TASK, TrialTask, train


@dataclass(frozen=True)
class SweepOutcome:
    """What a finished sweep did, with the wall times of its phases."""

    name: str
    parent_run_id: str
    storage: Path
    total: int
    finished: int
    failed: int  # diverged: recorded as failed runs, not retried
    errored: int  # retries exhausted
    nodes: int  # Ray nodes that trials finished on
    ray_start_s: float
    pretrain_s: float
    tune_s: float
    latency_s: float  # the timing phase (shrink.orchestrator.timing)
    errors: tuple[str, ...] = ()  # "<trial>: <why it errored>", one per errored trial

    @property
    def unfinished(self) -> int:
        """Trials the sweep stopped before (interrupted); ``--resume`` runs them."""
        return self.total - self.finished - self.failed - self.errored

    @property
    def ok(self) -> bool:
        """Every trial ran to an end (finished or diverged); none errored for good or was left undone."""
        return self.errored == 0 and self.unfinished == 0

    def summary(self) -> str:
        """What ``shrink sweep`` prints at its end."""
        lines = [
            f"sweep {self.name}: {self.total} trials, {self.finished} finished, {self.failed} diverged, "
            f"{self.errored} errored, {self.unfinished} unfinished; on {self.nodes} nodes",
            f"wall time: Ray start {self.ray_start_s:.1f} s, bases {self.pretrain_s:.1f} s, "
            f"trials {self.tune_s:.1f} s, timing {self.latency_s:.1f} s",
            f"MLflow parent run {self.parent_run_id}; Ray Tune state {self.storage}",
            *(f"errored: {error}" for error in self.errors),
        ]
        if self.unfinished or self.errored:
            lines.append("to run the rest: shrink sweep ... --resume (errored trials restart from their checkpoints)")
        return "\n".join(lines)


@dataclass(frozen=True)
class Plan:
    """Where and how a sweep will run, resolved from its spec and the environment."""

    spec: SweepSpec
    tracking_uri: str
    storage: Path  # the sweep's own Tune folder: <storage_path>/<name>

    @classmethod
    def of(cls, spec: SweepSpec) -> "Plan":
        """Resolve the tracking URI and storage folder (absolute: trials run in other directories)."""
        uri = absolute_tracking_uri(resolve_tracking_uri(spec.tracking_uri))
        return cls(spec, uri, spec.resolved_storage_path() / spec.name)

    def concurrency(self, available: dict[str, float]) -> int:
        """How many trials can run at once on ``available`` resources (a data-parallel trial needs room
        for all its workers)."""
        resources = self.spec.resources
        slots = resources.worker_slots(available) // resources.workers
        return min(slots, self.spec.max_concurrent_trials or slots)

    def describe(self, available: dict[str, float] | None) -> str:
        """What ``--dry-run`` prints: the grid, then where it runs (with ``available`` resources, if known)."""
        lines = [self.spec.describe()]
        if available is not None:
            lines.append(f"this machine: {self.concurrency(available)} trials at a time on {available['CPU']:g} "
                         f"CPUs and {available['GPU']:g} GPUs")
            if self.spec.resources.data_parallel:
                lines.append(self.placement(available))
        lines += [f"mlflow: {shown_uri(self.tracking_uri)} (experiment {self.spec.experiment})",
                  f"storage: {self.storage}"]
        return "\n".join(lines)


    def placement(self, available: dict[str, float]) -> str:
        """Where one data-parallel trial's workers go on a machine with ``available`` resources."""
        resources = self.spec.resources
        per_worker = f"{resources.cpus:g} CPU" + (f", {resources.gpus:g} GPU" if resources.gpus else "")
        ranks = ", ".join(f"rank {rank}: {per_worker}" for rank in range(resources.workers))
        return f"placement of each trial on this machine: {ranks} (rank 0 records to MLflow and checkpoints)"


def check_local(plan: Plan, *, resume: bool) -> None:
    """Everything that can be checked on this machine before Ray starts: data, resources, storage, tracking."""
    check_data(plan.spec)
    check_resources(plan.spec, local_resources(), "this machine")
    check_storage(plan, resume=resume)
    check_tracking(plan)


def check_tracking(plan: Plan) -> None:
    """The tracking store answers and can be written, and so can its artifact folder: a wrong address fails
    in seconds (``probe_tracking``), not after minutes of MLflow's retries with Ray started."""
    try:
        probe_tracking(plan.tracking_uri, plan.spec.experiment)
    except ConfigError as error:
        raise SpecError(str(error)) from None


STARTED = "shrink-started"  # in the sweep's storage folder: written before its bases are made


def check_storage(plan: Plan, *, resume: bool) -> None:
    """A new sweep must not overwrite an earlier one's state; ``--resume`` needs one to continue (Tune's,
    or the mark of a driver that stopped while the bases were being made)."""
    exists = tune.Tuner.can_restore(str(plan.storage)) or (plan.storage / STARTED).is_file()
    if resume and not exists:
        raise SpecError(f"nothing to resume: no sweep state in {plan.storage}; run without --resume")
    if not resume and exists:
        raise SpecError(
            f"sweep {plan.spec.name!r} already has state in {plan.storage}: pass --resume to continue it, "
            "or remove that folder (or rename the sweep) to start over"
        )


def check_address(address: str) -> None:
    """A ``host:port`` address must answer (``ray.init`` would retry it for minutes); ``auto`` is
    left to Ray."""
    host, _, port = address.rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise SpecError(
            f"--address {address}: no Ray head answers there ({error.strerror or error}); give the address "
            "that `ray start --head` printed (host:port), or auto on a cluster node"
        ) from None


# The folder under a sweep's storage path (shared by the nodes of a cluster) holding inductor's compile cache.
INDUCTOR_CACHE = "inductor-cache"


def cluster_trial_env(spec) -> dict[str, str]:
    """The environment variables of a cluster sweep's tasks and trials (Ray merges them into the job's):
    inductor's compile cache on the sweep's shared storage, so that a trial with ``compile`` on loads what
    a trial on any node compiled before instead of compiling again; and the driver's ``$SHRINK_COMPILE``,
    when set, so that the trials on every node compile as the driver's checks assumed, unless the driver
    runs as a cluster job: the job's own environment holds it then (``cluster.submit_sweep``), and Ray
    refuses a variable that the job and ``ray.init`` both give. A local sweep's trials share the machine's
    default inductor cache and inherit the driver's environment."""
    from shrink.experiment.runtime import compile_env

    handed = {} if os.environ.get(CLUSTER_JOB_ENV) else compile_env()
    return {"TORCHINDUCTOR_CACHE_DIR": str(spec.resolved_storage_path() / INDUCTOR_CACHE),
            "TORCHINDUCTOR_FX_GRAPH_CACHE": "1", **handed}


def quiet() -> dict:
    """``ray.init``'s arguments that keep Ray's own logging to warnings."""
    return {"logging_level": logging.WARNING, "logging_config": ray.LoggingConfig(log_level="WARNING")}


def run_sweep(spec: SweepSpec, *, address: str | None = None, resume: bool = False) -> SweepOutcome:
    """Run (or with ``resume`` continue) a sweep on a local Ray, or on the cluster at ``address``.

    Raises :class:`SpecError` before anything starts when the spec cannot run here.
    """
    plan = Plan.of(spec)
    if address is None:
        check_local(plan, resume=resume)
    else:
        check_address(address)
        check_storage(plan, resume=resume)
        check_tracking(plan)  # on a cluster, in the job on the head: before any trial

    started = time.monotonic()
    if address is None:
        available = local_resources()
        ray.init(address="local", num_cpus=int(available["CPU"]), num_gpus=int(available["GPU"]),
                 include_dashboard=False, **quiet())
    else:
        ray.init(address=address, runtime_env={"env_vars": cluster_trial_env(spec)}, **quiet())
    ray_start_s = time.monotonic() - started
    try:
        if address is not None:
            check_data(spec)
            nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
            check_resources(spec, ray.cluster_resources(), f"the cluster at {address}", nodes)
        if spec.resources.gpus:  # Ray counts GPUs that torch may not reach: every trial would fail
            check_gpu_nodes(spec)
        _say(f"ray: started in {ray_start_s:.1f} s; {plan.concurrency(ray.cluster_resources())} trials at a time")
        return _run(plan, resume=resume, ray_start_s=ray_start_s)
    finally:
        ray.shutdown()


def _run(plan: Plan, *, resume: bool, ray_start_s: float) -> SweepOutcome:
    spec = plan.spec
    client = MlflowClient(tracking_uri=plan.tracking_uri)
    experiment_id = ensure_experiment(plan.tracking_uri, spec.experiment)
    if resume:
        parent = _latest_parent_run(client, experiment_id, spec.name)
        client.update_run(parent, status=RunStatus.to_string(RunStatus.RUNNING))
        _close_interrupted_runs(client, experiment_id, parent)
    else:
        tags = recording.sweep_tags(spec.name, spec.methods)
        parent = client.create_run(experiment_id, run_name=spec.name, tags=tags).info.run_id
        client.log_text(parent, spec.text, "sweep.yaml")
        client.log_param(parent, "trials", spec.size)
    _say(f"mlflow: {shown_uri(plan.tracking_uri)}, experiment {spec.experiment!r}, parent run {parent}")

    try:
        started = time.monotonic()
        bases = None
        if resume and tune.Tuner.can_restore(str(plan.storage)):
            tuner = _restore(plan, plan.storage)
        else:  # a new sweep, or one whose driver stopped before the grid started: the cache keeps finished bases
            plan.storage.mkdir(parents=True, exist_ok=True)
            (plan.storage / STARTED).write_text(parent + "\n")
            bases = make_bases(spec, _say)
            tuner = _tuner(plan, plan.storage, _tasks(plan, bases, parent, followers=False))
        pretrain_s = time.monotonic() - started
        started = time.monotonic()
        results = list(tuner.fit())
        if any(spec.reference_of(point.strategy) for point in spec.trials()):  # compression-1 points follow none
            results += _run_followers(plan, bases, parent, resume=resume)
        tune_s = time.monotonic() - started
        started = time.monotonic()
        time_saved_pairs(plan.storage, spec.resources, _say)
        latency_s = time.monotonic() - started
    except BaseException:
        with contextlib.suppress(Exception):  # the store may be what failed: the sweep's own error is the one to see
            client.set_terminated(parent, status=RunStatus.to_string(RunStatus.FAILED))
        raise
    ended = [r.metrics.get(STATUS) for r in results if r.error is None]
    errored = [(TrialTask.from_tune(r.config).trial, _error_line(r.error)) for r in results if r.error is not None]
    outcome = SweepOutcome(
        name=spec.name, parent_run_id=parent, storage=plan.storage, total=len(results),
        finished=ended.count(TrialEnd.FINISHED), failed=ended.count(TrialEnd.DIVERGED), errored=len(errored),
        nodes=len({r.metrics[NODE] for r in results if NODE in r.metrics}),
        ray_start_s=ray_start_s, pretrain_s=pretrain_s, tune_s=tune_s, latency_s=latency_s,
        errors=tuple(f"{trial_label(trial)}: {reason}" for trial, reason in errored),
    )
    _close_sweep(plan, client, experiment_id, parent, outcome, errored)
    return outcome


def _close_sweep(plan: Plan, client: MlflowClient, experiment_id: str, parent: str, outcome: SweepOutcome,
                 errored: list[tuple[TrialConfig, str]]) -> None:
    """Mark the runs that errored trials left running failed, with why they errored (a trial that could not
    write cannot mark its own run), delete superseded and orphan runs, and end the parent run. A store that
    does not answer fails the driver with one line (``RecordingError``): the trials' state is in Tune's
    folder, and ``--resume`` records the rest once the store is back."""
    try:
        with recording.failing(plan.tracking_uri, f"closing sweep {outcome.name!r} (parent run {parent})"):
            for trial, reason in errored:
                recording.mark_errored(client, experiment_id, parent, trial.flat(), reason)
            _delete_superseded_runs(client, experiment_id, parent)
            status = RunStatus.FINISHED if outcome.ok else RunStatus.FAILED
            client.set_terminated(parent, status=RunStatus.to_string(status))
    except RecordingError as error:
        raise RecordingError(
            f"{error}; {outcome.finished} of {outcome.total} trials finished, {outcome.errored} errored, their state "
            f"in {plan.storage}: once the store answers, `shrink sweep ... --resume` records the rest"
        ) from error


def _error_line(error: BaseException) -> str:
    """What made a trial error, in one line: its own exception, not Ray's wrapping of it."""
    while isinstance(getattr(error, "cause", None), BaseException):
        error = error.cause
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else 'no reason given'}"


def _say(line: str) -> None:
    print(line, flush=True)


def _trainable(spec: SweepSpec):
    return tune.with_resources(train_data_parallel if spec.resources.data_parallel else train,
                               spec.resources.for_tune())


def _trial_dirname(trial) -> str:
    """Short, readable trial folders (Tune's default repeats the whole config)."""
    return f"{trial.trial_id}-{trial_label(TrialTask.from_tune(trial.config).trial).replace('/', '-')}"


FOLLOWERS = "followers"  # in the sweep's folder: the Tune experiment of the trials that follow a reference


def _run_followers(plan: Plan, bases: dict | None, parent_run_id: str, *, resume: bool) -> list:
    """The second phase: the matched trials that keep their reference trials' recorded rounds (each finds
    its reference's finished run when it starts, so it runs after the first phase's Tuner is done)."""
    experiment = plan.storage / FOLLOWERS
    if resume and tune.Tuner.can_restore(str(experiment)):
        tuner = _restore(plan, experiment)
    else:
        bases = bases if bases is not None else make_bases(plan.spec, _say)
        tuner = _tuner(plan, experiment, _tasks(plan, bases, parent_run_id, followers=True))
    _say("then the matched trials that keep their reference trials' recorded rounds, after them")
    return list(tuner.fit())


def _tasks(plan: Plan, bases: dict, parent_run_id: str, *, followers: bool) -> list[TrialTask]:
    """The grid's tasks of one phase: the trials that follow a reference (``followers``), or all the others."""
    spec = plan.spec
    configs = spec.trial_configs(bases, tracking_uri=plan.tracking_uri, parent_run_id=parent_run_id)
    latency_dir = str(plan.storage / LATENCY)  # each trial saves its pair there for the timing phase
    return [TrialTask(dataclasses.replace(config, latency_dir=latency_dir if config.measure_latency else None),
                      str(plan.storage), spec.resources, spec.reference_of(config.strategy))
            for config in configs if bool(spec.reference_of(config.strategy)) == followers]


def _tuner(plan: Plan, experiment: Path, tasks: list[TrialTask]):
    """A new Tuner of ``tasks``, its state in the folder ``experiment``."""
    spec = plan.spec
    # Tune sees only a data-parallel trial's driver (no CPU): it must not start more than the workers fit.
    concurrent = plan.concurrency(ray.cluster_resources()) if spec.resources.data_parallel else None
    return tune.Tuner(
        _trainable(spec),
        param_space={TASK: tune.grid_search([task.to_tune() for task in tasks])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=concurrent or spec.max_concurrent_trials,
            reuse_actors=True,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=experiment.name,
            storage_path=str(experiment.parent),
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),  # KeepLatestSaved deletes the old ones
            verbose=0,
            callbacks=[Progress(), KeepLatestSaved()],
        ),
    )


def _restore(plan: Plan, experiment: Path):
    return tune.Tuner.restore(str(experiment), trainable=_trainable(plan.spec), resume_errored=True)


def _latest_parent_run(client: MlflowClient, experiment_id: str, name: str) -> str:
    runs = client.search_runs([experiment_id], recording.sweeps_filter(name),
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise SpecError(f"nothing to resume: no parent run of sweep {name!r} in this MLflow experiment")
    return runs[0].info.run_id


def _close_interrupted_runs(client: MlflowClient, experiment_id: str, parent: str) -> None:
    """Mark the trial runs that a stopped driver left RUNNING as killed; a trial resumed from its
    checkpoint reopens its run, one that starts over supersedes it. A run tagged finished whose end was not
    recorded is left to its trial, which ends it (``trainable.finished_run_metrics``)."""
    for run in recording.child_runs(client, experiment_id, parent, "attributes.status = 'RUNNING'"):
        if not recording.is_finished(run):
            recording.mark_interrupted(client, run.info.run_id)


def _delete_superseded_runs(client: MlflowClient, experiment_id: str, parent: str) -> None:
    """Delete the runs of trials that started over (their worker or the driver died, or the store did not
    answer, before a checkpoint) and then finished in a new run, and the orphans of a repeated run creation
    (``recording.is_orphan``): each trial keeps one run."""
    runs = recording.child_runs(client, experiment_id, parent)
    finished = {recording.sweep_trial_key(run) for run in runs if recording.is_finished(run)}
    for run in runs:
        if recording.is_orphan(run) or (not recording.is_finished(run) and recording.sweep_trial_key(run) in finished):
            client.delete_run(run.info.run_id)
