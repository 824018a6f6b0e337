"""Which weights are prunable, and how many of them a compression ratio keeps.

Compression is the paper's definition: total parameters of the whole model / nonzero parameters after
pruning. Only the weights of Conv1d/2d/3d and Linear layers are pruned; every other parameter (biases,
normalization, the classifier unless asked) is stored as is and counts as nonzero.
"""

import math
from numbers import Real

from torch import nn

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def prunable_layers(model: nn.Module, prune_classifier: bool = False) -> dict[str, nn.Module]:
    """The Conv/Linear layers whose weights may be pruned, keyed by the weight's parameter name (in
    ``named_parameters`` order).

    The classifier is excluded unless ``prune_classifier``: every module marked ``is_classifier = True``
    (with everything inside it) or, when none is marked, the last Linear layer.
    """
    layers = {id(module.weight): module for module in model.modules() if isinstance(module, PRUNABLE_TYPES)}
    if not prune_classifier:
        marked = [module for module in model.modules() if getattr(module, "is_classifier", False)]
        linears = [layer for layer in layers.values() if isinstance(layer, nn.Linear)]
        for classifier in marked or linears[-1:]:
            for module in classifier.modules():
                if isinstance(module, PRUNABLE_TYPES):
                    layers.pop(id(module.weight), None)
    prunable = {name: layers[id(param)] for name, param in model.named_parameters() if id(param) in layers}
    lazy = [name for name, layer in prunable.items() if isinstance(layer.weight, nn.UninitializedParameter)]
    if lazy:
        raise ValueError(f"lazy layers {', '.join(lazy)} are uninitialized: run one forward pass first")
    return prunable


def max_compression(model: nn.Module, prune_classifier: bool = False) -> float:
    """The largest reachable compression: total parameters / unprunable ones (or / 1 if all prunable)."""
    total, unprunable = _sizes(model, prunable_layers(model, prune_classifier))
    return total / max(unprunable, 1)


def kept_count(model: nn.Module, layers: dict[str, nn.Module], compression: float) -> int:
    """How many of the prunable weights of ``layers`` stay so that total / nonzero = ``compression``.

    The nonzero target is ``round(total / compression)`` (halves round up); the unprunable parameters
    count in it. Raises ``ValueError`` if the target is below the unprunable parameters alone.
    """
    check_compression(compression)
    total, unprunable = _sizes(model, layers)
    target = math.floor(total / compression + 0.5)
    if target < max(unprunable, 1):
        largest = math.floor(total / max(unprunable, 1) * 1000) / 1000
        raise ValueError(
            f"compression {compression:g} is unreachable: {unprunable:,} of the {total:,} parameters are not "
            f"prunable, so the largest reachable compression is {largest:g}"
        )
    return target - unprunable


def check_compression(compression: float) -> None:
    """Raise unless ``compression`` is a finite number >= 1 (TypeError for a non-number)."""
    if isinstance(compression, bool) or not isinstance(compression, Real):
        raise TypeError(f"compression must be a number, got {type(compression).__name__}")
    if not (math.isfinite(compression) and compression >= 1):
        raise ValueError(f"compression must be a finite number >= 1 (total / nonzero parameters), got {compression}")


def _sizes(model: nn.Module, layers: dict[str, nn.Module]) -> tuple[int, int]:
    """Total parameters of the model and how many of them are not prunable weights of ``layers``."""
    total = sum(param.numel() for param in model.parameters())
    return total, total - sum(layer.weight.numel() for layer in layers.values())
