"""``prune``: score the prunable weights with a strategy, keep exactly the right number, attach the masks."""

from numbers import Integral

import torch
from torch import Tensor, nn

from shrink.pruning.budget import check_compression, kept_count, prunable_layers
from shrink.pruning.masks import apply_masks, get_masks
from shrink.pruning.registry import ScoreContext, Strategy, get_strategy
from shrink.pruning.select import proportional_counts, select_global, select_per_layer


def prune(
    model: nn.Module,
    strategy: str,
    compression: float,
    *,
    inputs: Tensor | None = None,
    targets: Tensor | None = None,
    prune_classifier: bool = False,
    seed: int | None = None,
) -> dict[str, Tensor]:
    """Prune ``model`` in place to ``compression`` = total / nonzero parameters with ``strategy`` (a name
    or alias, see ``strategies()``) and return the boolean masks, keyed by parameter name.

    Data-driven strategies score on the batch ``inputs``/``targets`` (class indices). Random strategies
    draw from ``seed``, or from torch's global generator when ``seed`` is None. Masks are attached to the
    model (see ``shrink.pruning.masks``); earlier masks of the same weights are replaced, and weights they
    pruned score lowest, so pruning a pruned model again only removes more.

    Channel strategies (``structure == "channels"``) trace the model on ``inputs`` (targets unused), never
    remove the classifier's outputs, and reach ``compression`` to within
    ``shrink.pruning.channels.CHANNEL_TOLERANCE`` (whole channels).
    """
    chosen = get_strategy(strategy)
    if chosen.structure == "channels":
        return _prune_channels(model, chosen, compression, inputs, prune_classifier)
    if chosen.needs_data and (inputs is None or targets is None):
        raise ValueError(f"strategy {chosen.name} scores on data: pass inputs= and targets= (a batch)")
    layers = prunable_layers(model, prune_classifier)
    keep = kept_count(model, layers, compression)
    device = next(iter(layers.values())).weight.device if layers else None
    ctx = ScoreContext(
        model=model,
        layers=layers,
        inputs=None if inputs is None else inputs.to(device),
        targets=None if targets is None else targets.to(device),
        generator=_generator(seed),
    )
    masks = _masks(chosen, ctx, keep) if layers else {}
    apply_masks(model, masks)
    return masks


def _prune_channels(model: nn.Module, strategy: Strategy, compression: float, inputs: Tensor | None,
                    prune_classifier: bool) -> dict[str, Tensor]:
    """``prune`` for a channel strategy: its mask function chooses whole channels."""
    if inputs is None:
        raise ValueError(f"strategy {strategy.name} traces the model: pass inputs= (a batch of examples)")
    if prune_classifier:
        raise ValueError(f"strategy {strategy.name} removes channels and never the classes: prune_classifier must be False")
    check_compression(compression)
    inputs = inputs.to(next(model.parameters()).device)
    masks = strategy.score(ScoreContext(model, prunable_layers(model), inputs, None, _generator(None)), compression)
    apply_masks(model, masks)
    return masks


def _masks(strategy: Strategy, ctx: ScoreContext, keep: int) -> dict[str, Tensor]:
    """Masks keeping ``keep`` prunable weights the way ``strategy`` chooses them."""
    if strategy.matched is not None:
        reference = _masks(strategy.matched, ctx, keep)
        counts = {name: int(mask.count_nonzero()) for name, mask in reference.items()}
    elif strategy.scope == "layer":
        counts = proportional_counts({name: weight.numel() for name, weight in ctx.weights.items()}, keep)
    else:
        counts = None
    with torch.no_grad():
        scores = _checked(strategy, strategy.score(ctx), ctx)
        earlier = get_masks(ctx.model)
        scores = {name: s.masked_fill(~earlier[name], 0) if name in earlier else s for name, s in scores.items()}
    return select_global(scores, keep) if counts is None else select_per_layer(scores, counts)


def _checked(strategy: Strategy, scores: dict[str, Tensor], ctx: ScoreContext) -> dict[str, Tensor]:
    """The scores, after checking that they cover exactly the prunable weights with their shapes."""
    if scores.keys() != ctx.layers.keys():
        raise ValueError(
            f"strategy {strategy.name} scored {sorted(scores)} but the prunable weights are {sorted(ctx.layers)}"
        )
    for name, weight in ctx.weights.items():
        if scores[name].shape != weight.shape:
            raise ValueError(
                f"strategy {strategy.name}: scores of {name} have shape {tuple(scores[name].shape)}, "
                f"the weight has {tuple(weight.shape)}"
            )
    return dict(scores)


def _generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed``, or torch's global one when ``seed`` is None."""
    if seed is None:
        return torch.default_generator
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    return torch.Generator().manual_seed(int(seed))
