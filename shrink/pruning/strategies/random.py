"""Random pruning, the baseline every method must beat: a uniformly random order of the weights."""

import torch
from torch import Tensor

from shrink.pruning.registry import ScoreContext, register_strategy


@register_strategy(
    "layer-random",
    scope="layer",
    description="uniformly random weights, the same fraction kept in every layer",
)
@register_strategy(
    "random",
    aliases=("RandomPruning",),
    description="uniformly random weights over the whole network, drawn from the seed",
)
def random_order(ctx: ScoreContext) -> dict[str, Tensor]:
    """Ranks of a random permutation of all prunable weights (int32, no ties).

    Drawn on the CPU from ``ctx.generator`` so that a seed gives the same masks on every device.
    """
    sizes = [weight.numel() for weight in ctx.weights.values()]
    ranks = torch.randperm(sum(sizes), generator=ctx.generator, dtype=torch.int32)
    return {
        name: part.view(weight.shape).to(weight.device)
        for (name, weight), part in zip(ctx.weights.items(), ranks.split(sizes))
    }
