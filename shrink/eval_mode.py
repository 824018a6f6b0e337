"""``eval_mode(model)``: run a model in eval mode for a while, then give every module its own mode back."""

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode inside the block; afterwards each submodule gets back the mode it had
    (``model.train(previous)`` would also switch modules that were deliberately left in eval mode)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
