"""Random pruning, the baseline every method must beat: a uniformly random order of the weights.

Deliberate difference from ShrinkBench (``RandomPruning``): exactly the kept count survives, a uniformly
random subset of that size, so the compression is exact like every other strategy's; ShrinkBench draws a
Bernoulli variable per weight, so the number kept varies from draw to draw around the target.
"""

import torch
from torch import Tensor

from shrink.pruning.registry import ScoreContext, register_strategy


@register_strategy(
    "layer-random",
    scope="layer",
    description="an exact count of uniformly random weights (ShrinkBench: a Bernoulli draw per weight), the same "
                "fraction kept in every layer",
)
@register_strategy(
    "random",
    aliases=("RandomPruning",),
    description="an exact count of uniformly random weights over the whole network, drawn from the seed "
                "(ShrinkBench: a Bernoulli draw per weight)",
)
def random_order(ctx: ScoreContext) -> dict[str, Tensor]:
    """Ranks of a random permutation of all prunable weights (int32, no ties): keeping the top ``k`` ranks
    keeps exactly ``k`` weights, a uniformly random subset of that size.

    Drawn on the CPU from ``ctx.generator`` so that a seed gives the same masks on every device.
    """
    sizes = [weight.numel() for weight in ctx.weights.values()]
    ranks = torch.randperm(sum(sizes), generator=ctx.generator, dtype=torch.int32)
    return {
        name: part.view(weight.shape).to(weight.device)
        for (name, weight), part in zip(ctx.weights.items(), ranks.split(sizes))
    }
