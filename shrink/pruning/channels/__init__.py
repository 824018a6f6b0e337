"""Structured pruning: remove whole output channels of convolutions and neurons of linear layers.

``channel_masks`` chooses channels and returns masks that zero each channel together with every
slice that depends on it (BatchNorm entries, the next layers' inputs, the other writers of a
residual sum), so the masked model computes exactly what the smaller one does;
``physically_prune`` then builds that smaller dense model.
"""

from shrink.pruning.channels.groups import ChannelGroup, Slice, trace_channels
from shrink.pruning.channels.removal import RemovalMismatch, physically_prune
from shrink.pruning.channels.scores import CRITERIA, channel_scores
from shrink.pruning.channels.selection import CHANNEL_TOLERANCE, SCOPES, CompressionNotReached, channel_masks

__all__ = [
    "CHANNEL_TOLERANCE",
    "CRITERIA",
    "SCOPES",
    "ChannelGroup",
    "CompressionNotReached",
    "RemovalMismatch",
    "Slice",
    "channel_masks",
    "channel_scores",
    "physically_prune",
    "trace_channels",
]
