"""Data-parallel trials on Ray Train: one trial fine-tuned by N processes under DDP.

A sweep's data-parallel trial is a Tune function trainable (:func:`train_distributed`) that holds no CPU
and runs a ``ray.train.torch.TorchTrainer`` with the trial's own ``ScalingConfig``: N workers, each with
the sweep's ``cpus`` and ``gpus`` (gloo on CPUs, NCCL on GPUs), placed by Ray wherever they fit (across
nodes too). Every worker runs ``run_trial`` with its ``Distributed`` context (see
``shrink.experiment.distributed`` for the semantics); what rank 0 reports reaches Tune through
``TuneReportCallback``: one report per epoch, then the final metrics (the inner ``fit()`` result carries
none, so nothing is read from it).

Checkpoints are Ray Train's: rank 0 attaches each epoch's state to its report and Train keeps the last
one under ``<sweep storage>/train/<trial id>``. When a worker dies, ``fit()`` fails and so does the Tune
trial; Tune's retry (the sweep's ``retries``) starts a TorchTrainer of the same name, which finds that
checkpoint, and every worker resumes from it, in the same MLflow run.

``shrink trial --workers N`` runs the same workers from :func:`run_distributed_trial`, on a Ray started
on this machine, without Tune.
"""

import dataclasses
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import ray
import ray.train
from ray import tune
from ray.train.torch import TorchConfig, TorchTrainer

from shrink.experiment import TrialConfig, TrialDiverged, run_trial
from shrink.experiment.distributed import Distributed
from shrink.orchestrator.trainable import NODE, STATUS, ReportingCheckpointer, finished_run_metrics, node_id

RESULT_FILE = "result.json"  # what rank 0 of `shrink trial --workers N` leaves for the driver


def _worker(loop_config: dict) -> None:
    """One Ray Train worker of a data-parallel trial: ``run_trial`` on its rank, then the final report."""
    distributed = Distributed.current()
    checkpointer = ReportingCheckpointer(ray.train)
    trial = TrialConfig.from_dict(loop_config["trial"])

    def report(epoch: int, metrics: Mapping) -> None:
        if loop_config.get("progress") and distributed.primary:  # `shrink trial --workers N` shows each epoch
            print(f"epoch {epoch}: train loss {metrics['train_loss']:.4f}  val top-1 {metrics['val_top1']:.4f}  "
                  f"{metrics['epoch_time_s']:.1f}s ({metrics['images_per_s']:.0f} img/s)", file=sys.stderr,
                  flush=True)
        checkpointer.report(epoch, metrics)

    try:
        final = {STATUS: "finished", **run_trial(trial, checkpointer=checkpointer, reporter=report,
                                                 distributed=distributed)}
    except TrialDiverged as error:  # every rank diverges at the same step: done, not retried
        final = {STATUS: "diverged", "failure": str(error)}
    ray.train.report({**final, NODE: node_id()})
    if distributed.primary and loop_config.get("result_dir"):
        (Path(loop_config["result_dir"]) / RESULT_FILE).write_text(json.dumps(final))


def trainer(trial: TrialConfig, *, cpus: float, gpus: float, storage: str, name: str, callbacks=(),
            result_dir: str | None = None, progress: bool = False) -> TorchTrainer:
    """The TorchTrainer of one data-parallel trial: ``trial.workers`` workers of ``cpus`` CPUs and ``gpus``
    GPUs each; its checkpoints under ``storage/name`` (a run of the same name resumes from them). With
    ``result_dir``, rank 0 also writes the final metrics there; with ``progress``, it prints each epoch."""
    return TorchTrainer(
        _worker,
        train_loop_config={"trial": trial.to_dict(), "result_dir": result_dir, "progress": progress},
        scaling_config=ray.train.ScalingConfig(num_workers=trial.workers, use_gpu=gpus > 0,
                                               resources_per_worker={"CPU": cpus, "GPU": gpus}),
        torch_config=TorchConfig(backend="nccl" if gpus > 0 else "gloo"),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage, callbacks=list(callbacks),
            failure_config=ray.train.FailureConfig(max_failures=0),  # retries are Tune's, as for one process
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
        ),
    )


def train_distributed(config: dict) -> None:
    """Tune function trainable of a data-parallel trial (``config["trial"]``; the sweep's Tune folder in
    ``config["storage"]``, each worker's ``{"cpus", "gpus"}`` in ``config["worker"]``): run its
    TorchTrainer and let rank 0's reports through to Tune."""
    from ray.tune.integration.ray_train import TuneReportCallback

    trial = TrialConfig.from_dict(config["trial"])
    final = finished_run_metrics(trial)
    if final is not None:
        tune.report({STATUS: "finished", **final, NODE: node_id()})
        return
    worker = config["worker"]
    trainer(trial, cpus=worker["cpus"], gpus=worker["gpus"], storage=str(Path(config["storage"]) / "train"),
            name=tune.get_context().get_trial_id(), callbacks=[TuneReportCallback()]).fit()


def run_distributed_trial(config: TrialConfig, *, checkpoint_dir: str | None = None) -> dict:
    """``shrink trial --workers N``: the trial on N workers of a Ray started on this machine (1 CPU, or
    ``threads`` CPUs, per worker; 1 GPU each on CUDA). With ``checkpoint_dir`` it resumes from the
    checkpoint an earlier run left there. Returns rank 0's final metrics."""
    from shrink import pruning
    from shrink.experiment import ConfigError, pretrain
    from shrink.experiment.config import check_reachable
    from shrink.orchestrator.spec import local_resources

    config = dataclasses.replace(config, threads=config.threads or 1).resolved()
    if pruning.get_strategy(config.strategy).structure != "channels":  # before any worker starts
        check_reachable(config.model, config.dataset, config.compression, prune_classifier=config.prune_classifier)
    if config.finetune.batch_size % config.workers:
        raise ConfigError(f"finetune.batch_size {config.finetune.batch_size} is not divisible by workers "
                          f"{config.workers}: the global batch is split evenly over the workers")
    cpus, gpus = _per_worker(config)
    available = local_resources()
    if config.workers * cpus > available["CPU"] or config.workers * gpus > available["GPU"]:
        raise ConfigError(f"{config.workers} workers of {cpus:g} CPUs and {gpus:g} GPUs do not fit this machine "
                          f"({available['CPU']:g} CPUs, {available['GPU']:g} GPUs)")
    if config.base_path is None:  # pretrain (or find) the base once, here, not in every worker
        base = pretrain(config.model, config.dataset, seed=0, data_root=config.data_root,
                        val_fraction=config.val_fraction, split_seed=config.split_seed, device=config.device,
                        threads=config.threads)
        config = dataclasses.replace(config, base_path=str(base.path), base_sha256=base.sha256)
    storage = Path(checkpoint_dir).resolve() if checkpoint_dir else Path(tempfile.mkdtemp(prefix="shrink-trial-"))
    result_dir = tempfile.mkdtemp(prefix="shrink-result-")
    ray.init(address="local", num_cpus=int(available["CPU"]), num_gpus=int(available["GPU"]),
             include_dashboard=False, log_to_driver=True)
    try:
        try:
            trainer(config, cpus=cpus, gpus=gpus, storage=str(storage), name="trial", result_dir=result_dir,
                    progress=True).fit()
        except ray.train.WorkerGroupError as error:  # rank 0's own error (e.g. a ConfigError), not Ray's wrapping
            failures = error.worker_failures
            raise failures[min(failures)] if failures else error from None
        return json.loads((Path(result_dir) / RESULT_FILE).read_text())
    finally:
        ray.shutdown()
        shutil.rmtree(result_dir, ignore_errors=True)
        if not checkpoint_dir:
            shutil.rmtree(storage, ignore_errors=True)


def _per_worker(trial: TrialConfig) -> tuple[float, float]:
    """CPUs and GPUs of each worker: its torch threads, and one GPU on CUDA."""
    return float(trial.threads), 1.0 if trial.device.startswith("cuda") else 0.0
