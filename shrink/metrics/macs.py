"""Multiply-accumulates (MACs) of one forward pass per example: the paper's "FLOPs". One MAC = 2 FLOPs.

Counted for every call of a Conv1d/2d/3d or Linear module, as ShrinkBench and the literature do; other
operations (normalization, activations, pooling, additions, functional matmuls) are not counted. A layer
computes ``rows x weight.numel()`` MACs, where ``rows`` is the number of output positions (output
elements / output channels): each output element takes ``in_channels / groups x prod(kernel_size)``
MACs, so any stride, padding, dilation and groups (depthwise too) are accounted for exactly. Bias
additions are not MACs. Nonzero MACs scale each layer by its weight density: ``rows x nonzero weights``.
"""

import math

import torch
from torch import Tensor, nn

from shrink.eval_mode import eval_mode

COUNTED_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def layer_macs(model: nn.Module, inputs: Tensor) -> dict[str, tuple[int, int]]:
    """Per-example ``(macs, nonzero_macs)`` of each Conv/Linear module that runs on ``inputs`` (which carry
    a batch dimension), keyed by module name. Runs in eval mode without gradients."""
    batch = inputs.shape[0]
    counts: dict[str, tuple[int, int]] = {}

    def counter(name: str):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            channel_dim = -1 if isinstance(module, nn.Linear) else -(len(module.kernel_size) + 1)
            rows, remainder = divmod(output.numel() // output.shape[channel_dim], batch)
            if remainder:
                raise ValueError(f"{name} produced outputs that do not split evenly over the batch of {batch}")
            total, nonzero = counts.get(name, (0, 0))
            counts[name] = (total + rows * module.weight.numel(), nonzero + rows * int(module.weight.count_nonzero()))

        return hook

    hooks = [
        module.register_forward_hook(counter(name))
        for name, module in model.named_modules()
        if isinstance(module, COUNTED_TYPES)
    ]
    try:
        with eval_mode(model), torch.no_grad():
            model(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return counts


def macs(model: nn.Module, inputs: Tensor) -> tuple[int, int]:
    """``(total, nonzero)`` multiply-accumulates of one forward pass for one example (1 MAC = 2 FLOPs).

    ``inputs`` carry a batch dimension; counts are per example. Nonzero MACs scale each Conv/Linear
    layer by the density of its weight.
    """
    counts = layer_macs(model, inputs).values()
    return sum(total for total, _ in counts), sum(nonzero for _, nonzero in counts)


def theoretical_speedup(model: nn.Module, inputs: Tensor) -> float:
    """Total MACs / nonzero MACs: the speedup if zero weights cost nothing (inf if all are zero)."""
    total, nonzero = macs(model, inputs)
    return total / nonzero if nonzero else math.inf
