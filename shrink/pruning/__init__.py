"""Pruning: strategies, exact selection, and masks that stay exact through training.

``prune(model, strategy, compression)`` prunes in place so that total / nonzero parameters equals
``compression`` to within one parameter. Strategies are scoring functions in one registry
(``strategies()``), extended with ``@register_strategy`` or the ``shrink.strategies`` entry-point group.
This package never imports Ray or MLflow.
"""

from shrink.pruning import strategies as _builtins  # noqa: F401  (registers the built-in strategies)
from shrink.pruning.budget import max_compression, prunable_layers
from shrink.pruning.channels import CHANNEL_TOLERANCE, CompressionNotReached, RemovalMismatch, physically_prune
from shrink.pruning.masks import apply_masks, get_masks, keep_masked, load_pruned, remove_masks
from shrink.pruning.prune import Pruner, prune
from shrink.pruning.registry import (
    BASELINES,
    ScoreContext,
    Strategy,
    get_strategy,
    is_baseline,
    register_strategy,
    resolve_strategy,
    strategies,
)

__all__ = [
    "BASELINES",
    "CHANNEL_TOLERANCE",
    "CompressionNotReached",
    "Pruner",
    "RemovalMismatch",
    "ScoreContext",
    "Strategy",
    "apply_masks",
    "get_masks",
    "get_strategy",
    "is_baseline",
    "keep_masked",
    "load_pruned",
    "max_compression",
    "physically_prune",
    "prunable_layers",
    "prune",
    "register_strategy",
    "remove_masks",
    "resolve_strategy",
    "strategies",
]
