"""The one check of a trial before any work: everything that needs no base, in one place.

``run_trial`` calls :func:`preflight` with the splits it loaded; the sweep-file reader calls it on each
(model, strategy) of the grid at its highest compression, and the data-parallel launcher calls it before
any worker starts, both without splits (no dataset file is read). A failure is one
:class:`ConfigError` whose ``key`` names the trial config field at fault; callers add their own prefix
(a sweep file's name and key) and nothing else, so a message reads the same wherever it is raised.

The checks that need the base itself (channel strategies reaching the compression on its weights, the
base's carve-out against the trial's, the early checkpoint of ``weight-rewind``) run once it is
resolved (``shrink.experiment.trial``).
"""

from shrink.experiment.config import FinetuneConfig, TrialConfig, check_names, check_reachable
from shrink.experiment.data import Splits
from shrink.experiment.errors import ConfigError
from shrink.experiment.runtime import forced_compile
from shrink.experiment.sources import BaseSource
from shrink.pruning.names import MatchedName
from shrink.pruning.schedules import Schedule


def preflight(config: TrialConfig, splits: Splits | None = None) -> None:
    """Raise :class:`ConfigError` unless ``config`` (resolved or not) can run: its names, fine-tuning, base
    source, workers (their device and share of the batch), compression and schedule; with ``splits`` (the
    trial's data), also the batch sizes and the schedule's events against the training split."""
    from shrink import datasets

    strategy = check_names(dataset=config.dataset, model=config.model, strategy=config.strategy)
    finetune = config.finetune.resolved(datasets.info(config.dataset).family)
    if config.base_path is None:
        _base(config, finetune)
    if config.compile is None:
        forced_compile()  # a bad $SHRINK_COMPILE
    if config.workers > 1 and config.device is not None and config.device.startswith("cuda:"):
        raise ConfigError(f"device {config.device!r} names one GPU, but each of the {config.workers} workers gets its "
                          "own GPU from Ray Train: give device 'cuda' (and choose the GPUs with CUDA_VISIBLE_DEVICES)",
                          key="device")
    if finetune.batch_size % config.workers:
        raise ConfigError(f"finetune.batch_size {finetune.batch_size} is not divisible by workers {config.workers}: "
                          f"the global batch is split evenly over the workers; give a multiple of {config.workers}",
                          key="finetune.batch_size")
    _reachable(config, strategy)
    if config.reference_run is not None and MatchedName.parse(strategy) is None:
        raise ConfigError(f"reference_run names the trial whose rounds a matched baseline keeps, but {strategy} is "
                          "not one (random-matched:<s>, magnitude-matched:<s>)", key="reference_run")
    if finetune.epochs == 0 and (config.schedule != "one-shot" or finetune.variant != "continue"):
        raise ConfigError(f"schedule {config.schedule!r} with fine-tuning variant {finetune.variant!r} "
                          "needs finetune.epochs >= 1", key="finetune.epochs")
    if splits is not None:
        _fits(config, strategy, finetune, len(splits.train))


def needs_recipe(variant: str, source: str) -> ConfigError:
    """The error of a fine-tuning variant that replays the base's recipe on a base without one."""
    return ConfigError(f"finetune.variant {variant!r} replays the base's training recipe, but the base "
                       f"({source}) was trained elsewhere with a recipe shrink does not know; use finetune.variant "
                       "'continue', or a base shrink pretrains (base: pretrain)", key="finetune.variant")


def schedule_events(config: TrialConfig, finetune: FinetuneConfig, steps_per_epoch: int) -> list[tuple[int, float]]:
    """The trial's pruning events ``(step, compression)`` (``shrink.pruning.schedules``)."""
    schedule = Schedule(config.schedule, config.schedule_rounds, config.schedule_every)
    return schedule.events(config.compression, finetune.epochs, steps_per_epoch)


# -- the checks, in order ---------------------------------------------------------------------------


def _base(config: TrialConfig, finetune: FinetuneConfig) -> None:
    """The base's source fits the model and the dataset's family (no file is read but the weights' keys)."""
    source = BaseSource.parse(config.base)
    source.check(config.model, config.dataset)
    if source.trained_elsewhere and finetune.variant != "continue":
        raise needs_recipe(finetune.variant, str(source))


def _reachable(config: TrialConfig, strategy: str) -> None:
    """Weight strategies reach the compression on the model's shapes (channel strategies are tried on the
    base's weights once it is resolved)."""
    from shrink import pruning

    if pruning.get_strategy(strategy).structure != "channels":
        check_reachable(config.model, config.dataset, config.compression, prune_classifier=config.prune_classifier)


def _fits(config: TrialConfig, strategy: str, finetune: FinetuneConfig, examples: int) -> None:
    """The batches and the schedule's events fit the ``examples`` of the training split."""
    from shrink import pruning

    if finetune.batch_size > examples:
        raise ConfigError(f"finetune.batch_size {finetune.batch_size} exceeds the {examples} training examples of "
                          f"{config.dataset}", key="finetune.batch_size")
    if pruning.get_strategy(strategy).needs_data and config.prune_batch_size > examples:
        raise ConfigError(f"prune_batch_size {config.prune_batch_size} exceeds the {examples} training examples of "
                          f"{config.dataset}", key="prune_batch_size")
    try:
        schedule_events(config, finetune, examples // finetune.batch_size)
    except ValueError as error:
        raise ConfigError(str(error), key="schedule") from None
