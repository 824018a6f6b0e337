"""Pruning: strategies, exact selection, and masks that stay exact through training.

``prune(model, strategy, compression)`` prunes in place so that total / nonzero parameters equals
``compression`` to within one parameter. Strategies are scoring functions in one registry
(``strategies()``), extended with ``@register_strategy`` or the ``shrink.strategies`` entry-point group.
This package never imports Ray or MLflow.

The names below are imported on first use, so that ``shrink.pruning.names`` (the baselines and the
matched-name format, read by ``shrink report``) loads without torch; the built-in strategies register
the first time the registry is read.
"""

import importlib

_EXPORTS = {
    "max_compression": "budget", "prunable_layers": "budget",
    "CHANNEL_TOLERANCE": "channels", "CompressionNotReached": "channels", "RemovalMismatch": "channels",
    "physically_prune": "channels",
    "apply_masks": "masks", "get_masks": "masks", "keep_masked": "masks", "load_pruned": "masks",
    "remove_masks": "masks",
    "BASELINES": "names", "MatchedName": "names", "is_baseline": "names",
    "Pruner": "pruner", "prune": "pruner",
    "ScoreContext": "registry", "Strategy": "registry", "get_strategy": "registry", "register_strategy": "registry",
    "resolve_strategy": "registry", "strategies": "registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
