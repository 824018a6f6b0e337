"""Data-parallel trials on Ray Train: one trial fine-tuned by N processes under DDP.

A sweep's data-parallel trial is a Tune function trainable (:func:`train_data_parallel`) that holds no CPU
and runs a ``ray.train.torch.TorchTrainer`` with the trial's own ``ScalingConfig``: N workers, each with
the sweep's ``cpus`` and ``gpus`` (gloo on CPUs, NCCL on GPUs), placed by Ray wherever they fit (across
nodes too). Every worker runs ``run_trial`` with its ``Ranks`` (see ``shrink.experiment.ranks`` for the
semantics); what rank 0 reports reaches Tune through ``TuneReportCallback``: one report per epoch, then
the final metrics (the inner ``fit()`` result carries none, so nothing is read from it). On GPUs a
worker's device is ``cuda``: the GPU Ray Train gave it, which Ray makes torch's current device (so a trial
naming one GPU, ``cuda:N``, is refused by ``preflight``).

A sweep's checkpoints are Ray Train's: rank 0 attaches each epoch's state to its report and Train keeps
the last one under ``<sweep storage>/train/<trial id>``. When a worker dies, ``fit()`` fails and so does
the Tune trial; Tune's retry (the sweep's ``retries``) starts a TorchTrainer of the same name, which
finds that checkpoint, and every worker resumes from it, in the same MLflow run.

``shrink trial --workers N`` runs the same workers from :func:`run_data_parallel_trial`, on a Ray started
on this machine, without Tune. It checks the trial and resolves its base exactly as a one-process trial
does (``preflight``, ``resolve_base``), before any worker starts, and its ``--checkpoint-dir`` is the
one-process trial's: a ``DirectoryCheckpointer`` that rank 0 saves to and every rank resumes from.
"""

import dataclasses
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import ray
import ray.train
from ray import tune
from ray.train.torch import TorchConfig, TorchTrainer

from shrink.experiment import ConfigError, DirectoryCheckpointer, TrialConfig, resolve_base
from shrink.experiment.preflight import preflight
from shrink.experiment.ranks import Ranks
from shrink.orchestrator.spec import Resources, local_resources
from shrink.orchestrator.trainable import (NODE, ReportingCheckpointer, TrialTask, final_result,
                                           finished_run_metrics, node_id, run_to_end)

RESULT_FILE = "result.json"  # what rank 0 of `shrink trial --workers N` leaves for the driver


@dataclass(frozen=True)
class WorkerJob:
    """What every worker of one data-parallel trial is given: the trial, and for ``shrink trial --workers``
    the trial's checkpoint folder (None: Ray Train's checkpoints, a sweep's), the folder rank 0 writes its
    final metrics to, and whether rank 0 prints each epoch."""

    trial: TrialConfig
    checkpoint_dir: str | None = None
    result_dir: str | None = None
    progress: bool = False

    def to_loop_config(self) -> dict:
        return {**dataclasses.asdict(self), "trial": self.trial.to_dict()}

    @classmethod
    def from_loop_config(cls, values: Mapping) -> "WorkerJob":
        return cls(**{**values, "trial": TrialConfig.from_dict(values["trial"])})


def _worker(loop_config: dict) -> None:
    """One Ray Train worker of a data-parallel trial: ``run_trial`` on its rank, then the final report."""
    from shrink.experiment import run_trial

    job = WorkerJob.from_loop_config(loop_config)
    ranks = Ranks.current()
    reporting = ReportingCheckpointer(ray.train)
    checkpointer = DirectoryCheckpointer(job.checkpoint_dir) if job.checkpoint_dir else reporting

    def report(epoch: int, metrics: Mapping) -> None:
        if job.progress and ranks.primary:  # `shrink trial --workers N` shows each epoch
            print(f"epoch {epoch}: train loss {metrics['train_loss']:.4f}  val top-1 {metrics['val_top1']:.4f}  "
                  f"{metrics['epoch_time_s']:.1f}s ({metrics['images_per_s']:.0f} img/s)", file=sys.stderr,
                  flush=True)
        if checkpointer is reporting:
            reporting.report(epoch, metrics)

    final = run_to_end(lambda: run_trial(job.trial, checkpointer=checkpointer, reporter=report, ranks=ranks))
    ray.train.report({**final, NODE: node_id()})
    if ranks.primary and job.result_dir:
        (Path(job.result_dir) / RESULT_FILE).write_text(json.dumps(final))


def trainer(job: WorkerJob, worker: Resources, *, storage: str, name: str, callbacks=()) -> TorchTrainer:
    """The TorchTrainer of one data-parallel trial: ``job.trial.workers`` workers holding ``worker``'s CPUs
    and GPUs each; Ray Train's state under ``storage/name`` (a run of the same name resumes from it)."""
    return TorchTrainer(
        _worker,
        train_loop_config=job.to_loop_config(),
        scaling_config=ray.train.ScalingConfig(num_workers=job.trial.workers, use_gpu=worker.gpus > 0,
                                               resources_per_worker={"CPU": worker.cpus, "GPU": worker.gpus}),
        torch_config=TorchConfig(backend="nccl" if worker.gpus > 0 else "gloo"),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage, callbacks=list(callbacks),
            failure_config=ray.train.FailureConfig(max_failures=0),  # retries are Tune's, as for one process
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
        ),
    )


def train_data_parallel(config: dict) -> None:
    """Tune function trainable of a data-parallel trial: run its TorchTrainer and let rank 0's reports
    through to Tune."""
    from ray.tune.integration.ray_train import TuneReportCallback

    task = TrialTask.from_tune(config)
    final = finished_run_metrics(task.trial)
    if final is not None:
        tune.report({**final_result(final), NODE: node_id()})
        return
    trainer(WorkerJob(task.resolved()), task.worker, storage=str(Path(task.storage) / "train"),
            name=tune.get_context().get_trial_id(), callbacks=[TuneReportCallback()]).fit()


def run_data_parallel_trial(config: TrialConfig, *, checkpoint_dir: str | None = None) -> dict:
    """``shrink trial --workers N``: the trial on N workers of a Ray started on this machine (``threads`` CPUs
    per worker, default 1; one GPU each on CUDA). Checked by ``preflight`` and given its base by
    ``resolve_base`` here, once, before any worker starts; with ``checkpoint_dir`` it resumes from the state
    an earlier run of the same trial (data-parallel or not) saved there. Returns rank 0's final metrics."""
    preflight(config)  # before resolving, which asks CUDA: a refused device is refused without a GPU too
    config = dataclasses.replace(config, threads=config.threads or 1).resolved()
    worker = _per_worker(config)
    available = local_resources()
    if config.workers * worker.cpus > available["CPU"] or config.workers * worker.gpus > available["GPU"]:
        raise ConfigError(f"{config.workers} workers of {worker.cpus:g} CPUs and {worker.gpus:g} GPUs do not fit this "
                          f"machine ({available['CPU']:g} CPUs, {available['GPU']:g} GPUs)", key="workers")
    base = resolve_base(config)
    config = dataclasses.replace(config, base_path=str(base.path), base_sha256=base.sha256)
    storage = tempfile.mkdtemp(prefix="shrink-trial-")  # Ray Train's own state; the trial's is checkpoint_dir
    result_dir = tempfile.mkdtemp(prefix="shrink-result-")
    job = WorkerJob(config, checkpoint_dir=str(Path(checkpoint_dir).resolve()) if checkpoint_dir else None,
                    result_dir=result_dir, progress=True)
    ray.init(address="local", num_cpus=int(available["CPU"]), num_gpus=int(available["GPU"]),
             include_dashboard=False, log_to_driver=True)
    try:
        try:
            trainer(job, worker, storage=storage, name="trial").fit()
        except ray.train.WorkerGroupError as error:  # rank 0's own error (e.g. a ConfigError), not Ray's wrapping
            failures = error.worker_failures
            raise failures[min(failures)] if failures else error from None
        return json.loads((Path(result_dir) / RESULT_FILE).read_text())
    finally:
        ray.shutdown()
        shutil.rmtree(result_dir, ignore_errors=True)
        shutil.rmtree(storage, ignore_errors=True)


def _per_worker(trial: TrialConfig) -> Resources:
    """What each worker holds: its torch threads as CPUs, and one GPU on CUDA."""
    return Resources(cpus=float(trial.threads), gpus=1.0 if trial.device.startswith("cuda") else 0.0,
                     workers=trial.workers)
