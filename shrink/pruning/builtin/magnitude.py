"""Magnitude pruning: keep the weights of largest absolute value."""

from torch import Tensor

from shrink.pruning.registry import ScoreContext, register_strategy


@register_strategy(
    "layer-magnitude",
    scope="layer",
    aliases=("LayerMagWeight",),
    description="|w|, the same fraction kept in every layer",
)
@register_strategy(
    "global-magnitude",
    aliases=("GlobalMagWeight",),
    description="|w|, ranked over the whole network",
)
def magnitude(ctx: ScoreContext) -> dict[str, Tensor]:
    """Absolute value of each weight."""
    return {name: weight.detach().abs() for name, weight in ctx.weights.items()}
