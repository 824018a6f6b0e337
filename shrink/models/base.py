"""What every model in the zoo shares: its description, its builder signature, the classifier mark."""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

Shape = tuple[int, int, int]
Builder = Callable[[int, Shape], nn.Module]
"""``build(num_classes, input_shape) -> nn.Module``; raises ``ValueError`` for shapes it cannot take."""


@dataclass(frozen=True)
class ModelInfo:
    """A named model: its default input shape ``(C, H, W)`` and class count, and where it comes from."""

    name: str
    input_shape: Shape
    num_classes: int
    paper: str
    description: str


def mark_classifier(module: nn.Module) -> nn.Module:
    """Mark ``module`` as the classifier (``is_classifier = True``), which pruning leaves alone by default."""
    module.is_classifier = True
    return module


def feature_size(make_features: Callable[[], nn.Module], input_shape: Shape, model: str) -> int:
    """Values per image that the module built by ``make_features`` produces from ``input_shape``.

    Found by passing one blank image through a throwaway copy; raises ``ValueError`` when the input is
    too small for the layers.
    """
    probe = make_features()
    try:
        with torch.no_grad():
            out = probe(torch.zeros(1, *input_shape))
    except RuntimeError as err:
        raise ValueError(f"{model} cannot take input shape {input_shape}: {err}") from None
    return out[0].numel()
