"""The model registry: one entry per name; a new model is a module with ``MODELS`` and a line here."""

import io
from collections.abc import Mapping
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from shrink.models import cifar_resnet, cifar_vgg, imagenet, lenet, small
from shrink.models.base import Builder, ModelInfo

_FAMILIES = (small, lenet, cifar_resnet, cifar_vgg, imagenet)
_MODELS: dict[str, tuple[ModelInfo, Builder]] = {
    model_info.name: (model_info, builder) for family in _FAMILIES for model_info, builder in family.MODELS
}


class UnknownModel(ValueError):
    """A model name that is not in the zoo."""


class WeightsError(ValueError):
    """A weights file that is missing, unreadable, or does not fit the model."""


def available() -> list[ModelInfo]:
    """Every model in the zoo, in registry order."""
    return [model_info for model_info, _ in _MODELS.values()]


def info(name: str) -> ModelInfo:
    """The description of model ``name``; ``UnknownModel`` lists the known names."""
    return _entry(name)[0]


def create(
    name: str,
    num_classes: int | None = None,
    *,
    input_shape: tuple[int, int, int] | None = None,
    weights: str | PathLike | None = None,
) -> nn.Module:
    """Build model ``name`` with fresh weights, or with those of the local state-dict file ``weights``.

    ``num_classes`` and ``input_shape`` ``(C, H, W)`` default to the model's own (``info(name)``).
    """
    model_info, build = _entry(name)
    if num_classes is None:
        num_classes = model_info.num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    input_shape = model_info.input_shape if input_shape is None else tuple(input_shape)
    if len(input_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in input_shape):
        raise ValueError(f"input_shape must be three positive integers (C, H, W), got {input_shape!r}")
    model = build(num_classes, input_shape)
    if weights is not None:
        _load_weights(model, Path(weights), name)
    return model


def parameter_count(name: str, num_classes: int | None = None) -> int:
    """Parameters of model ``name`` at its default input shape, counted without allocating weights."""
    with torch.device("meta"):
        model = create(name, num_classes)
    return sum(p.numel() for p in model.parameters())


def _entry(name: str) -> tuple[ModelInfo, Builder]:
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise UnknownModel(f"unknown model {name!r}; known models: {', '.join(_MODELS)}") from None


def check_weights(
    name: str,
    weights: str | PathLike | bytes,
    num_classes: int | None = None,
    *,
    input_shape: tuple[int, int, int] | None = None,
    label: str | None = None,
) -> None:
    """``WeightsError`` unless the state-dict file ``weights`` (a path, or its bytes called ``label``) fits
    model ``name`` built for ``num_classes`` and ``input_shape``; cheap (the model is built on the meta device)."""
    with torch.device("meta"):
        model = create(name, num_classes, input_shape=input_shape)
    where = label or str(weights)
    _fit(model, read_state(weights, where), where, name)


def read_state(weights: str | PathLike | bytes, label: str | None = None) -> Mapping:
    """The state dict in a file (a path, or its bytes called ``label``), read with ``weights_only=True``."""
    where = label or str(weights)
    if not isinstance(weights, bytes) and not Path(weights).is_file():
        raise WeightsError(
            f"weights file {where} does not exist (weights= takes a local state-dict file; shrink never downloads)"
        )
    try:
        source = io.BytesIO(weights) if isinstance(weights, bytes) else weights
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises pickle, zip and runtime errors for foreign files
        reason = str(err).splitlines()[0]
        raise WeightsError(f"cannot read weights file {where} as a torch state dict: {reason}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {where} holds a {type(state).__name__}, not a state dict of tensors")
    return state


def _load_weights(model: nn.Module, path: Path, name: str) -> None:
    state = read_state(path)
    _fit(model, state, str(path), name)
    model.load_state_dict(state)


def _fit(model: nn.Module, state: Mapping, path: str, name: str) -> None:
    """``WeightsError`` naming the mismatched keys unless ``state`` has exactly ``model``'s keys and shapes."""
    own = model.state_dict()
    problems = [f"missing {key}" for key in own if key not in state]
    problems += [f"unexpected {key}" for key in state if key not in own]
    problems += [
        f"{key} has shape {tuple(state[key].shape)}, expected {tuple(own[key].shape)}"
        for key in own
        if key in state and state[key].shape != own[key].shape
    ]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise WeightsError(f"weights file {path} does not fit {name}: {shown}")
