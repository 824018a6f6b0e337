"""Which channels to remove to reach a compression ratio, and the masks that remove them.

``compression`` keeps the paper's meaning: parameters of the dense model over parameters left.
Channels are removed one at a time in a fixed order until the parameter count is closest to the
target; removing a channel removes every slice of its group, so the reachable ratios are discrete
and the achieved one must be within :data:`CHANNEL_TOLERANCE` of the target (or
:class:`CompressionNotReached` is raised). Every layer keeps at least one channel.

The scope decides the order. ``global``: ascending score over the whole network. ``layer``: every
layer loses the same fraction of its channels (to one channel), lowest scores first.
"""

import math

import torch
from torch import Tensor, nn

from shrink.pruning.budget import check_compression
from shrink.pruning.channels.groups import ChannelGroup, trace_channels
from shrink.pruning.channels.removal import RemovalMismatch, physically_prune
from shrink.pruning.channels.scores import channel_scores

CHANNEL_TOLERANCE = 0.05
"""Largest relative miss allowed between the achieved and the requested compression ratio."""

SCOPES = ("global", "layer")


class CompressionNotReached(ValueError):
    """The nearest compression reachable by whole channels misses the target by more than the tolerance."""


def channel_masks(
    model: nn.Module, inputs: Tensor, compression: float, *, criterion: str, scope: str
) -> dict[str, Tensor]:
    """Boolean masks (True = kept) for every parameter that loses channels, removing whole channels
    ranked by ``criterion`` (``l1``, ``l2``, ``bn``) within ``scope`` (``global``, ``layer``) until
    the model is ``compression`` times smaller.

    The model is traced on ``inputs`` and not modified. Before returning, the masks are checked by
    removing the channels from a copy: it must compute what the masked model computes and have
    exactly the parameters the masks keep (else :class:`RemovalMismatch`), so a model whose
    couplings the graph gets wrong fails here, before any fine-tuning.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown channel scope {scope!r}; known: {', '.join(SCOPES)}")
    check_compression(compression)
    traced = trace_channels(model, inputs)
    params = dict(model.named_parameters())
    order = _removal_order(traced.groups, params, criterion, scope)
    if not order:
        raise ValueError(
            f"no channel of this model can be scored by '{criterion}' and removed "
            f"(left whole: {_describe(traced.fixed) or 'none'})"
        )
    count = _ParameterCount(traced.groups, params)
    total, target = count.total, count.total / compression
    k = _fewest_removals_reaching(count, order, target)
    if k > 0 and count.kept(order[: k - 1]) / target < target / count.kept(order[:k]):
        k -= 1  # one channel fewer lands closer to the target ratio
    achieved = total / count.kept(order[:k])
    if abs(achieved / compression - 1) > CHANNEL_TOLERANCE:
        most = total / count.kept(order)
        raise CompressionNotReached(
            f"whole {criterion} channels ({scope}) reach {achieved:.3f}x, not {compression:g}x within "
            f"{CHANNEL_TOLERANCE:.0%}; at most {most:.2f}x is reachable on this model "
            f"(every layer keeps one channel; left whole: {_describe(traced.fixed) or 'none'})"
        )
    masks = count.masks(order[:k])
    left = sum(p.numel() for p in physically_prune(model, masks, inputs).parameters())
    if left != count.kept(order[:k]):
        raise RemovalMismatch(f"removing the masked channels leaves {left} parameters, the masks keep {count.kept(order[:k])}")
    return masks


def _describe(fixed: dict[str, str]) -> str:
    return "; ".join(f"{root}: {why}" for root, why in fixed.items())


def _removal_order(groups, params, criterion, scope) -> list[tuple[int, int]]:
    """(group, channel) pairs in the order they are removed; each group's best channel never appears."""
    keyed = []
    for g, group in enumerate(groups):
        scores = channel_scores(group, params, criterion)
        if scores is None:
            continue
        ranked = torch.argsort(scores, stable=True)[:-1].tolist()
        for rank, channel in enumerate(ranked):
            key = scores[channel].item() if scope == "global" else (rank + 0.5) / group.channels
            keyed.append((key, g, channel))
    keyed.sort()
    return [(g, channel) for _, g, channel in keyed]


def _fewest_removals_reaching(count, order, target) -> int:
    """The smallest prefix of ``order`` whose removal leaves at most ``target`` parameters (or all of it)."""
    lo, hi = 0, len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        if count.kept(order[:mid]) <= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


class _ParameterCount:
    """Exact parameter counts and masks after removing a set of channels.

    A channel's slices cut whole index positions along one dimension of a parameter, so the
    surviving elements of a parameter are the outer product of one keep-vector per dimension.
    """

    def __init__(self, groups: list[ChannelGroup], params: dict[str, Tensor]):
        self.groups = groups
        self.shapes = {name: tuple(p.shape) for name, p in params.items()}
        self.total = sum(math.prod(shape) for shape in self.shapes.values())

    def _keep(self, removed) -> dict[tuple[str, int], Tensor]:
        gone = [torch.zeros(group.channels, dtype=torch.bool) for group in self.groups]
        for g, channel in removed:
            gone[g][channel] = True
        keep = {}
        for group, cut in zip(self.groups, gone):
            for s in group.slices:
                vector = keep.setdefault((s.param, s.dim), torch.ones(self.shapes[s.param][s.dim], dtype=torch.bool))
                vector[s.index[cut[s.channel]]] = False
        return keep

    def kept(self, removed) -> int:
        """Parameters left after removing the (group, channel) pairs in ``removed``."""
        kept = {name: list(shape) for name, shape in self.shapes.items()}
        for (name, dim), vector in self._keep(removed).items():
            kept[name][dim] = int(vector.sum())
        return sum(math.prod(shape) for shape in kept.values())

    def masks(self, removed) -> dict[str, Tensor]:
        """Masks for the parameters that lose positions (True = kept)."""
        masks = {}
        for (name, dim), vector in self._keep(removed).items():
            view = [1] * len(self.shapes[name])
            view[dim] = -1
            mask = masks.setdefault(name, torch.ones(self.shapes[name], dtype=torch.bool))
            mask &= vector.view(view)
        return {name: mask for name, mask in masks.items() if not mask.all()}
