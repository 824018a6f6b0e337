"""One trial, end to end: load the base, evaluate the dense control, prune, fine-tune with early
stopping on the validation split, evaluate on the test split once, record it all in one MLflow run.

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

import torch

from shrink.experiment.checkpoint import Checkpointer
from shrink.experiment.config import TrialConfig
from shrink.experiment.data import load_splits
from shrink.experiment.errors import CheckpointMismatch, ConfigError, MaskDrift, TrialDiverged
from shrink.experiment.finetuning import base_recipe, recipe_rate, replay_start, reset_values, set_rate, starting_state
from shrink.experiment.loop import Compute, epoch_seed, evaluate, make_optimizer, train_epoch
from shrink.experiment.bases import BaseCheckpoint, load_base, pretrain
from shrink.experiment.recording import PARENT_TAG, TrialRecorder
from shrink.experiment.runtime import configure_torch, git_commit, hardware, seed_everything, versions
from shrink.experiment.scheduling import ScheduledPruning
from shrink.pruning.schedules import Schedule

# The fields that make a saved state belong to a trial: a resume must agree on all of them.
IDENTITY = ("model", "dataset", "strategy", "compression", "seed", "val_fraction", "split_seed",
            "base_sha256", "prune_batch_size", "prune_classifier", "schedule", "schedule_rounds", "schedule_every",
            "finetune")
# Measured speedup: batch sizes, untimed and timed forward passes of each model.
LATENCY_BATCHES, LATENCY_WARMUP, LATENCY_REPEATS = (1, 64), 3, 10

Reporter = Callable[[int, dict], None]


def run_trial(config: TrialConfig, *, checkpointer: Checkpointer | None = None,
              reporter: Reporter | None = None) -> dict:
    """Run one trial and return its final metrics (the MLflow schema's) plus ``run_id``.

    After every fine-tuning epoch the epoch's metrics are logged, the state is saved through
    ``checkpointer`` and then ``reporter(epoch, metrics)`` is called, in that order. With a saved
    state, the trial resumes after its last epoch in the same MLflow run. Raises
    :class:`TrialDiverged` on a NaN/inf loss, after recording the run as failed.
    """
    started = time.perf_counter()
    config = config.resolved()
    state = checkpointer.load() if checkpointer is not None else None
    base = _resolve_base(config)
    config = dataclasses.replace(config, base_path=str(base.path), base_sha256=base.sha256)
    if state is not None:
        _check_resumable(state, config)
    configure_torch(config.device, config.threads, config.deterministic)
    train, val, test = load_splits(config.dataset, config.data_root, config.val_fraction, config.split_seed)

    from shrink import models

    model = models.create(config.model, num_classes=train.info.num_classes, input_shape=train.info.input_shape)
    model.load_state_dict(load_base(base.path, base.sha256))
    _check_feasible(config, model, train, base)
    compute = Compute.for_model(model, config.device, config.amp)
    model = compute.prepare(model)
    if state is None:
        recorder = TrialRecorder.create(config.tracking_uri, config.experiment_name, run_name=_run_name(config),
                                        params=config.flat(), tags=_tags(config, train.split_hash, compute))
    else:
        recorder = TrialRecorder.reopen(config.tracking_uri, state["run_id"])
    try:
        return _run(config, base, model, compute, (train, val, test), recorder, state, checkpointer, reporter,
                    started)
    except BaseException as error:
        recorder.fail(f"{type(error).__name__}: {error}")
        raise


def _run(config, base, model, compute, splits, recorder, state, checkpointer, reporter, started) -> dict:
    from shrink import metrics, pruning

    train, val, test = splits
    finetune = config.finetune
    recipe = base_recipe(base)
    replay = replay_start(finetune.variant, recipe, finetune.epochs)
    optimizer = make_optimizer(model, finetune if replay is None else recipe)
    example = compute.inputs(torch.zeros(1, *train.info.input_shape, device=config.device))
    steps_per_epoch = len(train) // finetune.batch_size
    events = _schedule(config).events(config.compression, finetune.epochs, steps_per_epoch)
    prune_to = _pruner(model, config, train, compute)
    if state is None:
        seed_everything(config.seed)
        masks, summary = _prune(model, prune_to, events[0][1], splits, compute)
        recorder.log_metrics(summary)
        start = starting_state(finetune.variant, base=base, model_name=config.model, num_classes=train.info.num_classes,
                               input_shape=train.info.input_shape, seed=config.seed)
        if start is not None:
            reset_values(model, start)
        # The pruned model is the first candidate only when it is already what fine-tuning starts from.
        candidate = len(events) == 1 and start is None
        progress = {"epoch": 0, "best_epoch": 0,
                    "best_val_top1": summary["pruned_val_top1"] if candidate else -math.inf,
                    "best_model": _cpu_copy(model.state_dict()) if candidate else None, "bad_epochs": 0,
                    "elapsed_s": 0.0}
    else:
        masks, summary = state["masks"], state["summary"]
        pruning.load_pruned(model, state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng(state["rng"], config.device)
        progress = state["progress"]
    pruning.keep_masked(model, optimizer)
    scheduled = ScheduledPruning(events, prune_to, steps_per_epoch, progress["epoch"], masks)

    for epoch in range(progress["epoch"] + 1, finetune.epochs + 1):
        if progress["bad_epochs"] >= finetune.patience:
            break
        epoch_start = time.perf_counter()
        if replay is not None:
            set_rate(optimizer, recipe_rate(recipe, replay + epoch - 1))
        batches = scheduled.batches(train.batches(finetune.batch_size, train=True, device=config.device,
                                                  seed=epoch_seed(config.seed, epoch)), epoch)
        try:
            stats = train_epoch(model, optimizer, batches, compute)
        except TrialDiverged as error:
            raise TrialDiverged(f"epoch {epoch}: {error}") from None
        scores = evaluate(model, val, compute)
        if not math.isfinite(scores["loss"]):
            raise TrialDiverged(f"epoch {epoch}: validation loss became {scores['loss']}")
        epoch_metrics = {"train_loss": stats.loss, "val_top1": scores["top1"], "val_top5": scores["top5"],
                         "val_loss": scores["loss"], "epoch_time_s": time.perf_counter() - epoch_start,
                         "images_per_s": stats.images_per_s}
        if scheduled.reached_target:  # before the final compression, an epoch is no candidate nor a bad one
            if scores["top1"] > progress["best_val_top1"] + finetune.min_delta:
                progress.update(best_epoch=epoch, best_val_top1=scores["top1"],
                                best_model=_cpu_copy(model.state_dict()), bad_epochs=0)
            else:
                progress["bad_epochs"] += 1
        progress["epoch"] = epoch
        masks = scheduled.masks
        recorder.log_metrics(epoch_metrics, step=epoch)
        if checkpointer is not None:
            elapsed = progress["elapsed_s"] + time.perf_counter() - started
            checkpointer.save({
                "run_id": recorder.run_id, "identity": _identity(config), "masks": masks,
                "summary": summary, "model": _cpu_copy(model.state_dict()),
                "optimizer": optimizer.state_dict(), "rng": _get_rng(config.device),
                "progress": {**progress, "elapsed_s": elapsed},
            })
        if reporter is not None:
            reporter(epoch, epoch_metrics)

    model.load_state_dict(progress["best_model"])
    _check_masks(model, masks)
    scores = evaluate(model, test, compute)
    size, nonzero = metrics.model_size(model)
    total_macs, nonzero_macs = metrics.macs(model, example)
    final = {
        "test_top1": scores["top1"], "test_top5": scores["top5"], "test_loss": scores["loss"],
        "delta_top1": scores["top1"] - summary["dense_test_top1"],
        "delta_top5": scores["top5"] - summary["dense_test_top5"],
        "size": size, "nonzero_size": nonzero, "compression_ratio": metrics.compression_ratio(model),
        "macs": total_macs, "nonzero_macs": nonzero_macs,
        "theoretical_speedup": metrics.theoretical_speedup(model, example),
        **_measured_speedup(config, base, model, masks, compute, val),
        "epochs_run": progress["epoch"], "best_epoch": progress["best_epoch"],
        "stopped_early": int(progress["epoch"] < finetune.epochs),
        "wall_time_s": progress["elapsed_s"] + time.perf_counter() - started,
    }
    recorder.log_artifacts(metrics.layer_table(model, example), config.to_dict())
    recorder.finish(final)
    return {**summary, **final, "run_id": recorder.run_id}


def _pruner(model, config: TrialConfig, train, compute: Compute):
    """``prune_to(compression) -> masks`` (on the CPU): the trial's strategy on its pruning batch (drawn,
    seeded, now). Made while ``model`` holds the dense base, which matched strategies take their
    reference's per-layer counts from at every round (``shrink.pruning.Pruner``)."""
    from shrink import pruning

    inputs = targets = None
    if _needs_data(config.strategy):
        inputs, targets = train.sample(config.prune_batch_size, seed=config.seed, device=config.device)
        inputs = compute.inputs(inputs)
    pruner = pruning.Pruner(model, config.strategy, inputs=inputs, targets=targets,
                            prune_classifier=config.prune_classifier, seed=config.seed)
    return lambda compression: _cpu_copy(pruner(compression))


def _prune(model, prune_to, compression: float, splits, compute: Compute) -> tuple[dict, dict]:
    """Evaluate the dense control, prune (to the schedule's first compression), evaluate the pruned model."""
    train, val, test = splits
    dense_val, dense_test = evaluate(model, val, compute), evaluate(model, test, compute)
    masks = prune_to(compression)
    pruned_val = evaluate(model, val, compute)
    summary = {
        "dense_val_top1": dense_val["top1"], "dense_val_top5": dense_val["top5"],
        "dense_test_top1": dense_test["top1"], "dense_test_top5": dense_test["top5"],
        "pruned_val_top1": pruned_val["top1"], "pruned_val_top5": pruned_val["top5"],
    }
    return masks, summary


def _measured_speedup(config: TrialConfig, base: BaseCheckpoint, model, masks: dict, compute: Compute, val) -> dict:
    """Dense over pruned median forward time at batch 64 (``measured_speedup``) and 1 (``_b1``), their
    passes interleaved on the trial's device. The pruned model is what one would deploy: physically
    smaller for channel strategies, the masked model (dense kernels, zeros) for weight strategies."""
    from shrink import metrics, models, pruning

    deployed = model
    if pruning.get_strategy(config.strategy).structure == "channels":
        check, _ = val.sample(min(8, len(val)), seed=config.seed, device=config.device)
        deployed = compute.prepare(pruning.physically_prune(model, masks, compute.inputs(check)))
    dense = models.create(config.model, num_classes=val.info.num_classes, input_shape=val.info.input_shape)
    dense.load_state_dict(load_base(base.path, base.sha256))
    timed = metrics.compare_latency({"dense": compute.prepare(dense), "pruned": deployed}, val.info.input_shape,
                                    LATENCY_BATCHES, device=config.device, warmup=LATENCY_WARMUP,
                                    repeats=LATENCY_REPEATS)
    speedup = metrics.measured_speedup(timed["dense"], timed["pruned"])
    return {"measured_speedup": speedup[64], "measured_speedup_b1": speedup[1],
            "latency_ms": timed["pruned"][64].median_ms, "dense_latency_ms": timed["dense"][64].median_ms}


def _check_feasible(config: TrialConfig, model, train, base: BaseCheckpoint) -> None:
    """The compression is reachable, the batches and the schedule fit the training split, and the
    fine-tuning variant has what it needs, checked before any work."""
    from shrink import pruning

    if pruning.get_strategy(config.strategy).structure == "channels":
        _check_channels_reachable(config, model, train)
    elif config.compression > (reachable := pruning.max_compression(model, prune_classifier=config.prune_classifier)):
        hint = "" if config.prune_classifier else " with the classifier unpruned (see prune_classifier)"
        raise ConfigError(f"compression {config.compression:g} is unreachable for {config.model}: "
                          f"at most {reachable:g}{hint}")
    if config.finetune.batch_size > len(train):
        raise ConfigError(f"finetune.batch_size {config.finetune.batch_size} exceeds the {len(train)} "
                          f"training examples of {config.dataset}")
    if _needs_data(config.strategy) and config.prune_batch_size > len(train):
        raise ConfigError(f"prune_batch_size {config.prune_batch_size} exceeds the {len(train)} "
                          f"training examples of {config.dataset}")
    finetune = config.finetune
    if finetune.epochs == 0 and (config.schedule != "one-shot" or finetune.variant != "continue"):
        raise ConfigError(f"schedule {config.schedule!r} with fine-tuning variant {finetune.variant!r} "
                          "needs finetune.epochs >= 1")
    try:
        _schedule(config).events(config.compression, finetune.epochs, len(train) // finetune.batch_size)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if finetune.variant == "weight-rewind" and "rewind" not in base.sidecar:
        raise ConfigError(f"base {base.path} has no early checkpoint for weight rewinding (pretrained before "
                          f"shrink saved one): delete {base.path.parent} to pretrain it again")


def _check_channels_reachable(config: TrialConfig, model, train) -> None:
    """Whole channels reach the compression only approximately, and some models offer none to a criterion:
    try the strategy on a copy of the base (a few training examples to trace it) before any work."""
    from shrink import pruning

    inputs, _ = train.sample(min(8, len(train)), seed=config.seed)
    try:
        pruning.prune(copy.deepcopy(model), config.strategy, config.compression, inputs=inputs,
                      prune_classifier=config.prune_classifier)
    except ValueError as error:
        raise ConfigError(f"{config.strategy} on {config.model}: {error}") from None


def _schedule(config: TrialConfig) -> Schedule:
    return Schedule(config.schedule, config.schedule_rounds, config.schedule_every)


def _needs_data(strategy: str) -> bool:
    from shrink import pruning

    return pruning.get_strategy(strategy).needs_data


def _resolve_base(config: TrialConfig) -> BaseCheckpoint:
    """The trial's base: the one named by path (and hash), else the cached or freshly pretrained one."""
    if config.base_path is None:
        return pretrain(config.model, config.dataset, seed=0, data_root=config.data_root,
                        val_fraction=config.val_fraction, split_seed=config.split_seed, device=config.device,
                        threads=config.threads)
    base = BaseCheckpoint.open(config.base_path)
    if config.base_sha256 is not None and base.sha256 != config.base_sha256:
        raise CheckpointMismatch(f"base checkpoint {base.path} has sha256 {base.sha256}, "
                                 f"the trial names {config.base_sha256}")
    made_for = (base.sidecar.get("model"), base.sidecar.get("dataset"))
    if made_for != (config.model, config.dataset):
        raise CheckpointMismatch(f"base checkpoint {base.path} is {made_for[0]} on {made_for[1]}, "
                                 f"the trial is {config.model} on {config.dataset}")
    return base


def _check_resumable(state: dict, config: TrialConfig) -> None:
    differ = [k for k, v in _identity(config).items() if state["identity"].get(k) != v]
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


def _identity(config: TrialConfig) -> dict:
    values = config.to_dict()
    return {k: values[k] for k in IDENTITY}


def _run_name(config: TrialConfig) -> str:
    return f"{config.model}-{config.dataset}-{config.strategy}-{config.compression:g}x-seed{config.seed}"


def _tags(config: TrialConfig, split_hash: str, compute: Compute) -> dict:
    return {
        "shrink.kind": "trial", "shrink.sweep": config.sweep, PARENT_TAG: config.parent_run_id,
        "shrink.base_sha256": config.base_sha256, "shrink.split_hash": split_hash,
        "shrink.git_commit": git_commit(), "shrink.versions": versions(), "shrink.device": config.device,
        "shrink.hardware": hardware(config.device), "shrink.amp": "bf16" if compute.amp else "off",
        "shrink.channels_last": int(compute.channels_last),
    }


def _cpu_copy(tensors: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in tensors.items()}


def _get_rng(device: str) -> dict:
    rng = {"cpu": torch.get_rng_state()}
    if device.startswith("cuda"):
        rng["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    return rng


def _set_rng(rng: dict, device: str) -> None:
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], torch.device(device))
