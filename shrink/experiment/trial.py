"""One trial, end to end, as named steps (:func:`run_trial`): check the config, resolve the base, open the
run, prune (or resume), fine-tune with early stopping on the validation split, evaluate on the test split
once, record it all in one MLflow run.

The test split is read twice per trial and never in between: the dense control's evaluation
before pruning, and the final evaluation of the restored best-validation weights.

A schedule (``shrink.pruning.schedules``) prunes again during fine-tuning; only epochs that end at
the final compression may become the best one or count towards early stopping. The fine-tuning
variant (``shrink.experiment.finetuning``) decides the starting weights and learning rates. Last,
the trial times the dense model against the deployable pruned one (physically smaller for channel
strategies, the masked model otherwise) and records ``measured_speedup``.
"""

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from shrink.experiment import finetuning, latency, recording
from shrink.experiment.bases import BaseCheckpoint, resolve_base
from shrink.experiment.checkpoint import Checkpointer, restore_rng, rng_state
from shrink.experiment.config import TrialConfig
from shrink.experiment.data import Splits, load_splits
from shrink.experiment.errors import CheckpointMismatch, ConfigError, MaskDrift, TrialDiverged
from shrink.experiment.loop import Compute, EarlyStopping, evaluate_split, make_optimizer, run_epochs
from shrink.experiment.preflight import needs_recipe, preflight, schedule_events
from shrink.experiment.ranks import ONE_PROCESS, Ranks
from shrink.experiment.recording import TrialRecorder
from shrink.experiment.runtime import (configure_torch, git_commit, hardware, prepare_cublas, seed_everything,
                                      versions)
from shrink.experiment.scheduling import ScheduledPruning
from shrink.metrics import Scores
from shrink.pruning.rounds import PruningRound

# The config fields a matched trial's reference run must share with it (besides being its <s>'s trial).
REFERENCE_FIELDS = ("model", "dataset", "compression", "seed", "val_fraction", "split_seed", "base_sha256",
                    "prune_batch_size", "prune_classifier", "schedule", "schedule_rounds", "schedule_every")
# The config fields a saved state must agree on to be resumed by a trial: what makes it the same trial.
RESUME_FIELDS = ("model", "dataset", "strategy", "compression", "seed", "val_fraction", "split_seed",
                 "base_sha256", "prune_batch_size", "prune_classifier", "schedule", "schedule_rounds",
                 "schedule_every", "finetune")

Reporter = Callable[[int, dict], None]


@dataclass(frozen=True)
class Trial:
    """What every step works on: the resolved config (its base named), the base, the data, the model to
    prune (loaded with the base, on the device) and how it computes."""

    config: TrialConfig
    base: BaseCheckpoint
    splits: Splits
    model: nn.Module
    compute: Compute
    scaler: torch.amp.GradScaler  # fine-tuning's loss scaler (compute.grad_scaler()), saved with its checkpoints
    ranks: Ranks = ONE_PROCESS  # this process's place in a data-parallel trial
    reference: list[PruningRound] | None = None  # a matched trial's: the rounds its reference trial recorded

    @property
    def finetune(self):
        return self.config.finetune

    @property
    def steps_per_epoch(self) -> int:
        return len(self.splits.train) // self.finetune.batch_size

    def example(self) -> torch.Tensor:
        """One all-zero input, for counting multiply-adds."""
        info = self.splits.train.info
        return self.compute.inputs(torch.zeros(1, *info.input_shape, device=self.config.device))


@dataclass(frozen=True)
class PruneSummary:
    """Accuracies around the first pruning: the dense control and the pruned model before fine-tuning."""

    dense_val_top1: float
    dense_val_top5: float
    dense_test_top1: float
    dense_test_top5: float
    pruned_val_top1: float
    pruned_val_top5: float
    val_n: int | None = None  # examples of the validation split (None in checkpoints saved before it was kept)

    @classmethod
    def of(cls, dense_val: Scores, dense_test: Scores, pruned_val: Scores) -> "PruneSummary":
        accuracies = ("top1", "top5")
        return cls(**recording.score_metrics("dense_val", dense_val, accuracies),
                   **recording.score_metrics("dense_test", dense_test, accuracies),
                   **recording.score_metrics("pruned_val", pruned_val, accuracies), val_n=pruned_val.n)

    def metrics(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class Finetuning:
    """Where fine-tuning stands after an epoch: the current masks, the early-stopping record and the best
    weights so far (None until an epoch at the final compression is the best), the seconds spent before
    this process (a resumed trial's earlier ones)."""

    masks: dict
    stopping: EarlyStopping
    epoch: int = 0
    best_model: dict | None = None
    elapsed_s: float = 0.0
    rounds: list[PruningRound] = dataclasses.field(default_factory=list)  # what each pruning so far kept

    def progress(self, elapsed_s: float) -> dict:
        """The checkpoint's ``progress`` entry, with ``elapsed_s`` seconds spent so far."""
        return {"epoch": self.epoch, "best_epoch": self.stopping.best_epoch,
                "best_val_top1": self.stopping.best_score, "best_model": self.best_model,
                "bad_epochs": self.stopping.bad_epochs, "elapsed_s": elapsed_s,
                "rounds": [r.to_dict() for r in self.rounds]}

    @classmethod
    def from_progress(cls, progress: dict, masks: dict, finetune) -> "Finetuning":
        """The state a checkpoint's ``progress`` entry describes (one saved before rounds were kept has none)."""
        stopping = EarlyStopping(finetune.patience, finetune.min_delta, progress["best_epoch"],
                                 progress["best_val_top1"], progress["bad_epochs"])
        rounds = [PruningRound.from_dict(r) for r in progress.get("rounds", [])]
        return cls(masks, stopping, progress["epoch"], progress["best_model"], progress["elapsed_s"], rounds)


@dataclass(frozen=True)
class SavedTrial:
    """A trial's checkpoint after an epoch: everything it needs to continue in the same MLflow run."""

    run_id: str
    resume_values: dict  # the RESUME_FIELDS values of the trial that saved it
    summary: PruneSummary
    model: dict
    optimizer: dict
    rng: dict
    finetuning: Finetuning
    points: recording.EpochPoints | None = None  # the epoch's metric points (None in checkpoints saved before)
    scaler: dict | None = None  # the loss scaler's state (None in checkpoints saved before; {} when it is off)

    def to_state(self, elapsed_s: float) -> dict:
        """The tensors and plain values a ``Checkpointer`` saves (they load with ``weights_only=True``)."""
        return {"run_id": self.run_id, "identity": self.resume_values, "masks": self.finetuning.masks,
                "summary": self.summary.metrics(), "model": self.model, "optimizer": self.optimizer,
                "rng": self.rng, "progress": self.finetuning.progress(elapsed_s),
                "points": None if self.points is None else self.points.to_dict(), "scaler": self.scaler}

    @classmethod
    def from_state(cls, state: dict, finetune) -> "SavedTrial":
        points = state.get("points")
        return cls(state["run_id"], state["identity"], PruneSummary(**state["summary"]), state["model"],
                   state["optimizer"], state["rng"],
                   Finetuning.from_progress(state["progress"], state["masks"], finetune),
                   None if points is None else recording.EpochPoints.from_dict(points), state.get("scaler"))


def run_trial(config: TrialConfig, *, checkpointer: Checkpointer | None = None,
              reporter: Reporter | None = None, ranks: Ranks = ONE_PROCESS) -> dict:
    """Run one trial and return its final metrics (the MLflow schema's) plus ``run_id``.

    After every fine-tuning epoch the state is saved through ``checkpointer`` with the epoch's metric
    points, ``reporter(epoch, metrics)`` is called, and then the points are logged, in that order. With a
    saved state, the trial resumes after its last epoch in the same MLflow run, first logging that epoch's
    saved points again (they are there once either way: a retried trial writes every point exactly once).
    Raises :class:`TrialDiverged` on a NaN/inf loss, after recording the run as failed.

    A data-parallel trial calls this in each of its ``config.workers`` processes with their
    ``ranks`` (``shrink.experiment.ranks``): rank 0 alone records and saves; ``reporter`` is called on
    every rank; every rank returns rank 0's result.
    """
    started = time.perf_counter()
    config = config.resolved()
    prepare_cublas(config.device, config.deterministic)  # before anything uses CUDA
    saved = _load_saved(checkpointer, config)
    splits = _check_before_work(config, ranks)
    trial = _prepare(config, splits, ranks, _reference(config))
    if saved is not None:
        _check_resumable(saved, trial.config)
    prune_to = _pruner(trial)  # while the model holds the dense base
    recorder = _open_run(trial, saved)
    try:
        optimizer = make_optimizer(trial.model, trial.finetune if _rates(trial) is None else trial.base.recipe)
        if saved is None:
            summary, state = _prune(trial, prune_to, recorder)
        else:
            summary, state = _resume(trial, saved, optimizer, recorder)
        _finetune(trial, prune_to, state, optimizer, recorder, summary, checkpointer, reporter, started)
        final = _final_evaluation(trial, state, summary, started, recorder)
        if ranks.primary:  # rank 0 measures and records; every rank returns what it returns
            recorder.log_artifacts(_layers(trial), trial.config.to_dict(), state.rounds)
            recorder.finish(final)
        return ranks.broadcast({**summary.metrics(), **final, "run_id": recorder.run_id} if ranks.primary else None)
    except BaseException as error:
        recorder.fail(f"{type(error).__name__}: {error}")
        raise


# -- steps ----------------------------------------------------------------------------------------


def _check_before_work(config: TrialConfig, ranks: Ranks) -> Splits:
    """Every check that needs no base (:func:`shrink.experiment.preflight.preflight`, with the data), before
    any pretraining, and that the trial runs in as many processes as it has workers. Returns the splits."""
    if ranks.size != config.workers:
        raise ConfigError(f"the trial is configured for {config.workers} workers but runs in {ranks.size} "
                          "processes", key="workers")
    splits = load_splits(config.dataset, config.data_root, config.val_fraction, config.split_seed, config.threads,
                         config.decode)
    preflight(config, splits)
    return splits


def _load_saved(checkpointer: Checkpointer | None, config: TrialConfig) -> SavedTrial | None:
    """The trial's saved state, if any, refused before any work when it belongs to another trial (the base
    is compared once it is resolved)."""
    state = checkpointer.load() if checkpointer is not None else None
    if state is None:
        return None
    saved = SavedTrial.from_state(state, config.finetune)
    _check_resumable(saved, config)
    return saved


def _reference(config: TrialConfig) -> list[PruningRound] | None:
    """A matched trial's reference rounds: those its ``reference_run`` recorded, that run checked to be its
    reference strategy's trial of the same model, data, base, compression, seed and schedule."""
    if config.reference_run is None:
        return None
    from shrink.pruning.names import MatchedName

    flat = config.flat()
    expected = {key: flat[key] for key in REFERENCE_FIELDS if flat[key] is not None}
    expected["strategy"] = MatchedName.parse(config.strategy).reference
    try:
        return recording.reference_rounds(config.tracking_uri, config.reference_run, expected)
    except ValueError as error:
        raise ConfigError(str(error), key="reference_run") from None


def _prepare(config: TrialConfig, splits: Splits, ranks: Ranks, reference: list[PruningRound] | None) -> Trial:
    """Resolve the base (pretraining it when needed), build the model from it, and run the checks that need
    the base: channel strategies reach the compression on it, ``weight-rewind`` finds its early checkpoint."""
    from shrink import models

    base = resolve_base(config)
    config = dataclasses.replace(config, base_path=str(base.path), base_sha256=base.sha256)
    configure_torch(config.device, config.threads, config.deterministic)
    info = splits.train.info
    model = models.create(config.model, num_classes=info.num_classes, input_shape=info.input_shape)
    model.load_state_dict(base.load())
    _check_base(config, model, splits.train, base)
    compute = Compute.for_model(model, config.device, config.amp, config.compile)
    return Trial(config, base, splits, compute.prepare(model), compute, compute.grad_scaler(), ranks, reference)


def _open_run(trial: Trial, saved: SavedTrial | None) -> TrialRecorder:
    """A new MLflow run holding the config and the tags, or the saved trial's run reopened."""
    config = trial.config
    if not trial.ranks.primary:
        return _Silent()
    if saved is not None:
        return TrialRecorder.reopen(config.tracking_uri, saved.run_id)
    tags = recording.trial_tags(
        sweep=config.sweep, parent_run_id=config.parent_run_id, base_sha256=config.base_sha256,
        base_source=trial.base.source,
        split_hash=trial.splits.train.split_hash, git_commit=git_commit(), versions=versions(),
        device=config.device, hardware=hardware(config.device), amp=str(trial.compute.amp),
        channels_last=int(trial.compute.channels_last), compile=int(trial.compute.compile), workers=config.workers,
        decode=config.decode)
    inputs = tuple(recording.DataInput(config.dataset, split.split, split.split_hash, len(split))
                   for split in (trial.splits.train, trial.splits.val, trial.splits.test))
    name = recording.trial_run_name(model=config.model, strategy=config.strategy, compression=config.compression,
                                    seed=config.seed, base_name=config.base_name, control=bool(config.control_for))
    return TrialRecorder.create(config.tracking_uri, config.experiment_name, run_name=name, params=config.flat(),
                                tags=tags, inputs=inputs)


def _prune(trial: Trial, prune_to, recorder: TrialRecorder) -> tuple[PruneSummary, Finetuning]:
    """Evaluate the dense control, prune to the schedule's first compression, evaluate the pruned model,
    then set the weights fine-tuning starts from (the fine-tuning variant's)."""
    config, model = trial.config, trial.model
    train, val, test = trial.splits.train, trial.splits.val, trial.splits.test
    seed_everything(config.seed)
    compute, ranks = trial.compute, trial.ranks
    dense_val, dense_test = evaluate_split(model, val, compute, ranks), evaluate_split(model, test, compute, ranks)
    events = _events(config, trial.steps_per_epoch)
    masks = prune_to(events[0][1])
    rounds = [PruningRound.of_masks(events[0][1], masks)]
    summary = PruneSummary.of(dense_val, dense_test, evaluate_split(model, val, compute, ranks))
    recorder.log_metrics(summary.metrics())
    start = finetuning.starting_state(config.finetune.variant, base=trial.base, model_name=config.model,
                                      num_classes=train.info.num_classes, input_shape=train.info.input_shape,
                                      seed=config.seed)
    if start is not None:
        finetuning.reset_values(model, start)
    stopping = EarlyStopping(config.finetune.patience, config.finetune.min_delta)
    # The pruned model is the first candidate only when it is already what fine-tuning starts from.
    if len(events) == 1 and start is None:
        stopping.best_score = summary.pruned_val_top1
        return summary, Finetuning(masks, stopping, best_model=_cpu_copy(model.state_dict()), rounds=rounds)
    return summary, Finetuning(masks, stopping, rounds=rounds)


def _resume(trial: Trial, saved: SavedTrial, optimizer, recorder: TrialRecorder) -> tuple[PruneSummary, Finetuning]:
    """Log the points of the trial's last epoch (which may not have arrived), restore the model, the optimizer,
    the loss scaler (fp16's scale and its count of steps since the last overflow) and the random state saved
    after it."""
    from shrink import pruning

    if saved.points is not None:
        recorder.log_points(saved.points)
    pruning.load_pruned(trial.model, saved.model)
    optimizer.load_state_dict(saved.optimizer)
    if saved.scaler:  # empty when the saving run's was off (a scaler that is off ignores a saved state)
        trial.scaler.load_state_dict(saved.scaler)
    restore_rng(saved.rng, trial.config.device)
    return saved.summary, saved.finetuning


def _finetune(trial: Trial, prune_to, state: Finetuning, optimizer, recorder: TrialRecorder,
              summary: PruneSummary, checkpointer: Checkpointer | None, reporter: Reporter | None,
              started: float) -> None:
    """Fine-tune from the epoch after ``state.epoch``: each epoch becomes the best one or counts towards early
    stopping (only at the final compression), is saved with its metric points, reported, then logged (a trial
    stopped before its points arrived logs them when it resumes from that checkpoint)."""
    from shrink import pruning

    config, model = trial.config, trial.model
    pruning.keep_masked(model, optimizer)

    def prune_again(compression: float) -> dict:
        masks = prune_to(compression)
        state.rounds.append(PruningRound.of_masks(compression, masks))
        return masks

    scheduled = ScheduledPruning(_events(config, trial.steps_per_epoch), prune_again, trial.steps_per_epoch,
                                 state.epoch, state.masks)
    epochs = run_epochs(model, optimizer, trial.splits.train, trial.splits.val, trial.compute,
                        epochs=range(state.epoch + 1, config.finetune.epochs + 1),
                        batch_size=config.finetune.batch_size, seed=config.seed, rates=_rates(trial),
                        batches=scheduled.batches, stop=lambda: state.stopping.exhausted, ranks=trial.ranks,
                        scaler=trial.scaler)
    for epoch in epochs:
        if not math.isfinite(epoch.val.loss):
            raise TrialDiverged(f"epoch {epoch.number}: validation loss became {epoch.val.loss}")
        if scheduled.reached_target and state.stopping.update(epoch.number, epoch.val.top1):
            state.best_model = _cpu_copy(model.state_dict())
        state.epoch, state.masks = epoch.number, scheduled.masks
        metrics = recording.epoch_metrics(epoch)
        points = recording.EpochPoints.stamped(epoch.number, metrics)
        if checkpointer is not None and trial.ranks.primary:
            saved = SavedTrial(recorder.run_id, _resume_values(config), summary, _cpu_copy(model.state_dict()),
                               optimizer.state_dict(), rng_state(config.device), state, points,
                               trial.scaler.state_dict())
            checkpointer.save(saved.to_state(state.elapsed_s + time.perf_counter() - started))
        if reporter is not None:
            reporter(epoch.number, metrics)
        recorder.log_points(points)


def _final_evaluation(trial: Trial, state: Finetuning, summary: PruneSummary, started: float,
                      recorder: TrialRecorder) -> dict | None:
    """Restore the best-validation weights, check the masks held, evaluate on the test split once, and
    measure size, multiply-adds and speedup (rank 0 only: the other ranks of a data-parallel trial return
    None after the test evaluation they share in). A sweep's trial saves its dense/pruned pair for the
    sweep's timing phase instead of timing it (``shrink.experiment.latency``)."""
    from shrink import metrics

    model, example = trial.model, trial.example()
    model.load_state_dict(state.best_model)
    _check_masks(model, state.masks)
    scores = evaluate_split(model, trial.splits.test, trial.compute, trial.ranks)
    if not trial.ranks.primary:
        return None
    size, nonzero = metrics.model_size(model)
    total_macs, nonzero_macs = metrics.macs(model, example)
    return {
        **recording.score_metrics("test", scores),
        "delta_top1": scores.top1 - summary.dense_test_top1,
        "delta_top5": scores.top5 - summary.dense_test_top5,
        "size": size, "nonzero_size": nonzero, "compression_ratio": metrics.compression_ratio(model),
        "macs": total_macs, "nonzero_macs": nonzero_macs,
        "theoretical_speedup": metrics.theoretical_speedup(model, example),
        **(_measured_speedup(trial, state.masks, recorder) if trial.config.measure_latency else {}),
        "epochs_run": state.epoch, "best_epoch": state.stopping.best_epoch,
        "stopped_early": int(state.epoch < trial.finetune.epochs),
        "wall_time_s": state.elapsed_s + time.perf_counter() - started,
    }


# -- helpers --------------------------------------------------------------------------------------


def _rates(trial: Trial):
    return finetuning.rates(trial.finetune.variant, trial.base.recipe, trial.finetune.epochs)


def _events(config: TrialConfig, steps_per_epoch: int) -> list[tuple[int, float]]:
    return schedule_events(config, config.finetune, steps_per_epoch)


def _pruner(trial: Trial) -> Callable[[float], dict]:
    """``prune_to(compression) -> masks`` (on the CPU): the trial's strategy on its pruning batch (drawn,
    seeded, now). Make it once, while the model holds the dense base: matched strategies take their
    reference's per-layer counts from it at every round (``shrink.pruning.Pruner``). In a data-parallel
    trial rank 0 prunes (a copy of the model, outside DDP, given each round's weights and masks) and every
    rank applies its masks, then checks that all ranks hold the same ones."""
    from shrink import pruning

    config, ranks = trial.config, trial.ranks
    if not ranks.primary:
        pruner, shadow = None, None
    else:
        inputs = targets = None
        if _needs_data(config.strategy):
            inputs, targets = trial.splits.train.sample(config.prune_batch_size, seed=config.seed,
                                                        device=config.device)
            inputs = trial.compute.inputs(inputs)
        shadow = trial.model if ranks.size == 1 else copy.deepcopy(trial.model)
        pruner = pruning.Pruner(shadow, config.strategy, inputs=inputs, targets=targets,
                                prune_classifier=config.prune_classifier, seed=config.seed,
                                reference_rounds=trial.reference)

    def prune_to(compression: float) -> dict:
        return _cpu_copy(pruner(compression))

    def prune_once(compression: float) -> dict:
        masks = None
        if ranks.primary:
            pruning.load_pruned(shadow, trial.model.state_dict())  # this round's weights and masks
            masks = _cpu_copy(pruner(compression))
        masks = ranks.broadcast(masks)
        pruning.apply_masks(trial.model, masks)
        ranks.check_same(f"the masks at compression {compression:g}", pruning.get_masks(trial.model))
        return masks

    return prune_to if ranks.size == 1 else prune_once


def _measured_speedup(trial: Trial, masks: dict, recorder: TrialRecorder) -> dict:
    """The dense base and the pruned model one would deploy (physically smaller for channel strategies,
    the masked model, dense kernels and zeros, for weight strategies), timed now (the ``measured_speedup``
    metrics returned, the ``latency.*`` conditions logged as params) or, in a sweep (``latency_dir``),
    saved for its exclusive phase (nothing returned)."""
    from shrink import models, pruning

    config, compute, val = trial.config, trial.compute, trial.splits.val
    deployed = trial.model
    if pruning.get_strategy(config.strategy).structure == "channels":
        check, _ = val.sample(min(8, len(val)), seed=config.seed, device=config.device)
        deployed = pruning.physically_prune(trial.model, masks, compute.inputs(check))
    dense = models.create(config.model, num_classes=val.info.num_classes, input_shape=val.info.input_shape)
    dense.load_state_dict(trial.base.load())
    if config.latency_dir is not None:
        pair = latency.LatencyPair(dense, copy.deepcopy(deployed).cpu(), val.info.input_shape, compute,
                                   config.threads, recorder.uri, recorder.run_id)
        latency.save_pair(pair, config.latency_dir)
        return {}
    timed = latency.time_pair(dense, deployed, val.info.input_shape, compute, latency.IN_TRIAL)
    recorder.log_params(timed.conditions.params())
    return timed.metrics


def _layers(trial: Trial):
    from shrink import metrics

    return metrics.layer_table(trial.model, trial.example())


def _check_base(config: TrialConfig, model, train, base: BaseCheckpoint) -> None:
    """The checks that need the base's weights or sidecar."""
    from shrink import pruning

    if pruning.get_strategy(config.strategy).structure == "channels":
        # Whole channels reach the compression only approximately, and some models offer none to a
        # criterion: try the strategy on a copy of the base (a few training examples to trace it).
        inputs, _ = train.sample(min(8, len(train)), seed=config.seed)
        try:
            pruning.prune(copy.deepcopy(model), config.strategy, config.compression, inputs=inputs,
                          prune_classifier=config.prune_classifier)
        except ValueError as error:
            raise ConfigError(f"{config.strategy} on {config.model}: {error}", key="compression") from None
    from shrink import datasets

    base.check_data(train.split_hash, datasets.fingerprint(config.dataset, config.data_root),
                    f"val_fraction {config.val_fraction:g}, split_seed {config.split_seed}")
    if base.recipe is None and config.finetune.variant != "continue":
        raise needs_recipe(config.finetune.variant, base.source)
    if config.finetune.variant == "weight-rewind" and base.rewind is None:
        raise ConfigError(f"base {base.path} has no early checkpoint for weight rewinding (pretrained before "
                          f"shrink saved one): delete {base.path.parent} to pretrain it again", key="base")


def _needs_data(strategy: str) -> bool:
    from shrink import pruning

    return pruning.get_strategy(strategy).needs_data


def _check_resumable(saved: SavedTrial, config: TrialConfig) -> None:
    """Refuse ``saved`` unless its trial agrees on every resume field (the base's hash once it is known)."""
    differ = [k for k, v in _resume_values(config).items()
              if saved.resume_values.get(k) != v and (k != "base_sha256" or v is not None)]
    if differ:
        raise CheckpointMismatch(f"the saved trial state belongs to another trial (differs in {', '.join(differ)})")


def _check_masks(model, masks: dict) -> None:
    """The masks are those set at pruning and every pruned weight is still exactly zero."""
    from shrink import pruning

    now = pruning.get_masks(model)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        current = now.get(name)
        if current is None or not torch.equal(current.cpu(), mask.cpu()):
            raise MaskDrift(f"the mask of {name} changed during fine-tuning")
        pruned = int(torch.count_nonzero(params[name].detach()[~current.to(params[name].device)]))
        if pruned:
            raise MaskDrift(f"{pruned} pruned weights of {name} are no longer zero after fine-tuning")


def _resume_values(config: TrialConfig) -> dict:
    values = config.to_dict()
    return {k: values[k] for k in RESUME_FIELDS}


class _Silent:
    """The recorder of a data-parallel trial's ranks other than 0: they record nothing."""

    run_id = None

    def log_metrics(self, *args, **kwargs) -> None:
        pass

    def log_points(self, *args, **kwargs) -> None:
        pass

    def log_artifacts(self, *args, **kwargs) -> None:
        pass

    def log_params(self, *args, **kwargs) -> None:
        pass

    def finish(self, *args, **kwargs) -> None:
        pass

    def fail(self, *args, **kwargs) -> None:
        pass


def _cpu_copy(tensors: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in tensors.items()}
