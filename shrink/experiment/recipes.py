"""The documented dense training recipe per dataset family, used to pretrain base models.

A recipe's name carries a hash of its values, so changing any value (or overriding the epochs)
names a different recipe and therefore a different cached base.
"""

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from shrink.experiment.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    """How a dense base model is trained from scratch."""

    family: str  # the dataset family it is for
    optimizer: str  # "adam" or "sgd"
    lr: float  # initial learning rate
    batch_size: int
    epochs: int
    momentum: float  # SGD only
    nesterov: bool  # SGD only
    weight_decay: float
    schedule: str  # "constant", or "cosine" (annealed to 0 over the epochs, stepped per epoch)

    @property
    def name(self) -> str:
        """``<family>-<optimizer>-e<epochs>-<first 8 hex of the sha256 of the values>``."""
        values = json.dumps(dataclasses.asdict(self), sort_keys=True)
        digest = hashlib.sha256(values.encode()).hexdigest()[:8]
        return f"{self.family}-{self.optimizer}-e{self.epochs}-{digest}"

    @property
    def rewind_epoch(self) -> int:
        """The epoch whose weights ``weight-rewind`` returns to (pretraining saves them): 5% of the way,
        at least 1."""
        return max(1, round(self.epochs * REWIND_FRACTION))

    def rate(self, epoch: int) -> float:
        """The learning rate of training epoch ``epoch`` (0-based): cosine annealing to 0 over the recipe's
        epochs, stepped per epoch, or constant. Past the last epoch the last epoch's rate stays (a replayed
        schedule can run longer than the recipe)."""
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "cosine":
            return self.lr * (1 + math.cos(math.pi * min(epoch, self.epochs - 1) / self.epochs)) / 2
        raise ValueError(f"unknown learning-rate schedule {self.schedule!r}; known: constant, cosine")


# Weight rewinding returns to the weights after this share of the base's training.
REWIND_FRACTION = 0.05


RECIPES: dict[str, Recipe] = {
    # sklearn's 8x8 digits: a small CNN reaches ~97% in 30 epochs of ~0.1 s.
    "digits": Recipe("digits", "adam", 1e-3, 64, 30, 0.0, False, 0.0, "constant"),
    # MNIST / Fashion-MNIST: Adam converges in about 10 epochs (an MLP reaches ~88% on Fashion-MNIST).
    "mnist": Recipe("mnist", "adam", 1e-3, 128, 10, 0.0, False, 0.0, "constant"),
    # CIFAR ResNets/VGGs (He et al. 2016 style): SGD + Nesterov, weight decay, cosine over 160 epochs.
    "cifar": Recipe("cifar", "sgd", 0.1, 128, 160, 0.9, True, 5e-4, "cosine"),
    # ImageNet: the standard 90-epoch SGD recipe, cosine-annealed.
    "imagenet": Recipe("imagenet", "sgd", 0.1, 256, 90, 0.9, True, 1e-4, "cosine"),
}


# What a base's recipe may override, and each value's check (the recipe name's hash covers every value, so
# an override names another recipe and another cached base).
OVERRIDES = {
    "optimizer": (lambda v: v in ("adam", "sgd"), "'adam' or 'sgd'"),
    "lr": (lambda v: _number(v) and v > 0, "a number > 0"),
    "batch_size": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "momentum": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "nesterov": (lambda v: isinstance(v, bool), "true or false"),
    "weight_decay": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "schedule": (lambda v: v in ("constant", "cosine"), "'constant' or 'cosine'"),
}


def recipe_for(family: str, epochs: int | None = None, overrides: tuple[tuple[str, object], ...] = ()) -> Recipe:
    """The recipe of ``family``, with ``epochs`` and the ``(field, value)`` ``overrides`` when given."""
    if family not in RECIPES:
        raise ConfigError(f"no training recipe for dataset family {family!r}; known: {', '.join(RECIPES)}")
    if epochs is not None and not (_whole(epochs) and epochs >= 1):
        raise ConfigError(f"epochs must be an integer >= 1, got {epochs!r}", key="epochs")
    for name, value in overrides:
        if name not in OVERRIDES:
            raise ConfigError(f"recipe field {name!r} cannot be overridden; known: {', '.join(OVERRIDES)}", key=name)
        ok, allowed = OVERRIDES[name]
        if not ok(value):
            raise ConfigError(f"{name} must be {allowed}, got {value!r}", key=name)
    return dataclasses.replace(RECIPES[family], **dict(overrides), **({"epochs": epochs} if epochs is not None else {}))


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
