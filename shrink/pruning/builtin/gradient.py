"""Gradient-magnitude pruning: keep the weights whose removal changes the loss most, to first order.

Deliberate difference from ShrinkBench (``GlobalMagGrad``/``LayerMagGrad``): the gradient is taken in eval
mode, so BatchNorm normalizes with its running statistics and dropout is off, as in the model that is
evaluated and deployed; ShrinkBench switches the model to train mode for it (batch statistics, dropout on,
and the scoring pass updates BatchNorm's running statistics).
"""

import torch
from torch import Tensor
from torch.nn import functional as F

from shrink.eval_mode import eval_mode
from shrink.pruning.registry import ScoreContext, register_strategy


@register_strategy(
    "layer-gradient",
    scope="layer",
    aliases=("LayerMagGrad",),
    needs_data=True,
    description="|w * dL/dw| on the batch in eval mode (ShrinkBench: train mode), the same fraction kept in "
                "every layer",
)
@register_strategy(
    "global-gradient",
    aliases=("GlobalMagGrad",),
    needs_data=True,
    description="|w * dL/dw| on the batch in eval mode (ShrinkBench: train mode), ranked over the whole network",
)
def weight_times_gradient(ctx: ScoreContext) -> dict[str, Tensor]:
    """``|w * dL/dw|`` with L the mean cross-entropy of the model on ``(inputs, targets)``.

    The model runs in eval mode (BatchNorm running statistics, no dropout; nothing in the model changes),
    unlike ShrinkBench's train mode; ``.grad`` and ``requires_grad`` are left as they were.
    """
    weights = list(ctx.weights.values())
    frozen = [not weight.requires_grad for weight in weights]
    try:
        with eval_mode(ctx.model), torch.enable_grad():
            for weight in weights:
                weight.requires_grad_(True)
            loss = F.cross_entropy(ctx.model(ctx.inputs), ctx.targets)
            grads = torch.autograd.grad(loss, weights, allow_unused=True)
    finally:
        for weight, was_frozen in zip(weights, frozen):
            weight.requires_grad_(not was_frozen)
    unused = [name for name, grad in zip(ctx.weights, grads) if grad is None]
    if unused:
        raise ValueError(f"the loss does not depend on {', '.join(unused)}: cannot score them by gradient")
    return {name: (weight.detach() * grad).abs_() for (name, weight), grad in zip(ctx.weights.items(), grads)}
