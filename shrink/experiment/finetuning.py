"""Fine-tuning variants: which weights fine-tuning starts from, and which learning rates it sees.

The masks chosen by pruning are kept in every variant; only the surviving weights differ.

- ``continue`` (the default): the pruned weights, the trial's fine-tuning optimizer at its fixed rate
  (Blalock et al. 2020).
- ``lr-rewind`` (Renda et al. 2020): the pruned weights, retrained with the base recipe's optimizer and
  its learning-rate schedule replayed from epoch ``T - E`` (``T`` base epochs, ``E`` fine-tuning epochs).
- ``weight-rewind`` (Frankle et al. 2019; Renda et al. 2020): every parameter and BatchNorm statistic
  reset to the base's early checkpoint, saved by pretraining after epoch ``Recipe.rewind_epoch = k``,
  then the masks applied; retrained with the recipe replayed from epoch ``k``.
- ``scratch`` (Liu et al. 2019): parameters re-initialised (seeded by the trial's seed), then the masks
  applied: the same sparse structure trained from scratch with the recipe from epoch 0.

A replayed schedule that runs past the base's last epoch keeps the last epoch's rate.
"""

import torch
from torch import nn

from shrink.experiment.loop import RateSchedule
from shrink.experiment.recipes import Recipe

FINETUNES = ("continue", "lr-rewind", "weight-rewind", "scratch")


def rates(variant: str, recipe: Recipe, finetune_epochs: int) -> RateSchedule | None:
    """The learning rates ``variant`` fine-tunes with: ``recipe``'s schedule replayed from the base epoch
    where the variant starts, or None for ``continue`` (the fine-tuning preset's fixed rate)."""
    start = replay_start(variant, recipe, finetune_epochs)
    return None if start is None else RateSchedule(recipe, start)


def replay_start(variant: str, recipe: Recipe, finetune_epochs: int) -> int | None:
    """The base epoch from which ``variant`` replays the recipe's schedule (None for ``continue``)."""
    if variant not in FINETUNES:
        raise ValueError(f"unknown fine-tuning variant {variant!r}; known: {', '.join(FINETUNES)}")
    return {
        "continue": None,
        "lr-rewind": max(0, recipe.epochs - finetune_epochs),
        "weight-rewind": recipe.rewind_epoch,
        "scratch": 0,
    }[variant]


def reset_values(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Overwrite every parameter and buffer of ``model`` with ``state`` (mask buffers excepted, which
    stay); the names must match exactly."""
    from shrink.pruning.masks import MASK_SUFFIX

    own = {k: v for k, v in model.state_dict().items() if not k.endswith(MASK_SUFFIX)}
    if own.keys() != state.keys():
        differ = sorted(own.keys() ^ state.keys())
        raise ValueError(f"the starting weights do not fit the model: {', '.join(differ[:5])} differ")
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value)


def starting_state(variant: str, *, base, model_name: str, num_classes: int, input_shape: tuple[int, ...],
                   seed: int) -> dict | None:
    """The parameters and buffers ``variant`` restarts the pruned model from (None: keep the pruned ones):
    the base's early checkpoint for ``weight-rewind`` (hash verified), a fresh initialisation seeded with
    ``seed`` for ``scratch``."""
    if variant == "weight-rewind":
        return base.load_rewind()
    if variant == "scratch":
        from shrink import models

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return models.create(model_name, num_classes=num_classes, input_shape=input_shape).state_dict()
    return None
