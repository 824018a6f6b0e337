"""Activation-scaled magnitude pruning: a weight matters as much as |w| times the input it multiplies.

Deliberate difference from ShrinkBench (``GlobalMagAct``/``LayerMagAct``): the input's size is the mean of
its absolute value, mean |x|; ShrinkBench averages the signed input over the batch first, |mean x|, which
differs wherever inputs take both signs (the first layer's normalized images, layers after a residual sum
or without a ReLU before them): there, inputs that cancel out on average look unused.
"""

import torch
from torch import Tensor, nn

from shrink.eval_mode import eval_mode
from shrink.pruning.registry import ScoreContext, register_strategy


@register_strategy(
    "layer-activation",
    scope="layer",
    aliases=("LayerMagAct",),
    needs_data=True,
    description="|w| * mean |input| of its channel on the batch (ShrinkBench: |mean input|), the same fraction "
                "kept in every layer",
)
@register_strategy(
    "global-activation",
    aliases=("GlobalMagAct",),
    needs_data=True,
    description="|w| * mean |input| of its channel on the batch (ShrinkBench: |mean input|), ranked over the "
                "whole network",
)
def weight_times_activation(ctx: ScoreContext) -> dict[str, Tensor]:
    """``|w| * a_c`` where ``a_c`` is the mean absolute input activation of the weight's input channel
    (the mean L1 norm per example and position) over the batch ``inputs``, taken in eval mode.

    For a Conv with groups, weight ``[o, j, ...]`` reads input channel ``(o // (out / groups)) *
    (in / groups) + j``. A layer that runs several times averages over all its calls.
    """
    layers = ctx.layers
    sums: dict[str, Tensor] = {}
    counts = dict.fromkeys(layers, 0)

    def record(name: str, channel_dim: int):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            x = args[0].detach().abs()
            dims = [d for d in range(x.dim()) if d != channel_dim % x.dim()]
            sums[name] = sums.get(name, 0) + x.sum(dims)
            counts[name] += x.numel() // x.shape[channel_dim]

        return hook

    hooks = [
        layer.register_forward_hook(record(name, -1 if isinstance(layer, nn.Linear) else _conv_channel_dim(layer)))
        for name, layer in layers.items()
    ]
    try:
        with eval_mode(ctx.model), torch.no_grad():
            ctx.model(ctx.inputs)
    finally:
        for hook in hooks:
            hook.remove()
    idle = [name for name, count in counts.items() if count == 0]
    if idle:
        raise ValueError(f"{', '.join(idle)} did not run on the inputs: cannot score them by activation")
    return {
        name: ctx.weights[name].detach().abs() * _per_weight(sums[name] / counts[name], layer)
        for name, layer in layers.items()
    }


def _conv_channel_dim(conv: nn.Module) -> int:
    """Channel dimension of a ConvNd input counted from the end (inputs may be batched or not)."""
    return -(len(conv.kernel_size) + 1)


def _per_weight(channel_mean: Tensor, layer: nn.Module) -> Tensor:
    """The input-channel means laid out to broadcast against the layer's weight."""
    if isinstance(layer, nn.Linear):
        return channel_mean.view(1, -1)
    out_channels, in_per_group = layer.weight.shape[:2]
    groups = layer.groups
    per_group = channel_mean.view(groups, 1, in_per_group).expand(groups, out_channels // groups, in_per_group)
    return per_group.reshape(out_channels, in_per_group, *([1] * len(layer.kernel_size)))
