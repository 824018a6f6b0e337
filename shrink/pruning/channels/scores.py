"""Channel importance: filter norms (Li et al. 2017) and BatchNorm scales (Liu et al. 2017).

Scores are per channel of a group and comparable across groups, so that a global ranking is
meaningful: a filter norm is taken per weight (mean absolute value for ``l1``, root mean square
for ``l2``) over every filter that writes the channel (several across a residual addition), so a
layer with a large fan-in is not favoured merely for having more weights; ``bn`` is the mean
absolute BatchNorm scale over the group's BatchNorms. Within one layer the order is exactly that
of the plain norms.
"""

import torch
from torch import Tensor

from shrink.pruning.channels.groups import ChannelGroup

CRITERIA = ("l1", "l2", "bn")


def channel_scores(group: ChannelGroup, params: dict[str, Tensor], criterion: str) -> Tensor | None:
    """One float64 score per channel of ``group`` (higher is kept longer), or None when the group has
    nothing the criterion can score (``bn`` on a layer without BatchNorm)."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown channel criterion {criterion!r}; known: {', '.join(CRITERIA)}")
    slices = group.slices_of("scale" if criterion == "bn" else "filter")
    if not slices:
        return None
    total = torch.zeros(group.channels, dtype=torch.float64)
    count = torch.zeros(group.channels, dtype=torch.float64)
    for s in slices:
        param = params[s.param].detach()
        rows = param.index_select(s.dim, s.index.to(param.device)).reshape(len(s.index), -1).double().cpu()
        values = rows.square() if criterion == "l2" else rows.abs()
        total.index_add_(0, s.channel, values.sum(1))
        count.index_add_(0, s.channel, torch.full((len(s.index),), float(rows.shape[1]), dtype=torch.float64))
    mean = total / count
    return mean.sqrt() if criterion == "l2" else mean
