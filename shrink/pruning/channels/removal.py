"""Physical removal: turn a channel-masked model into a smaller dense one that computes the same.

torch-pruning removes the channels (and every dependent slice) from the modules; this module
decides which channels from the masks and checks the result against the masked model, so a
dependency the graph got wrong fails loudly here instead of yielding a different network.
"""

import contextlib
import copy

import torch
from torch import Tensor, nn

from shrink.pruning.channels.groups import trace_channels
from shrink.pruning.masks import remove_masks

RTOL, ATOL = 1e-4, 1e-5


class RemovalMismatch(RuntimeError):
    """The physically pruned model does not compute what the masked model computes."""


def physically_prune(model: nn.Module, masks: dict[str, Tensor], inputs: Tensor) -> nn.Module:
    """A smaller copy of ``model`` without the channels that ``masks`` remove entirely.

    A channel is removed when every slice of its group (filter rows, BatchNorm entries, the next
    layers' input slices) is masked; anything else masked stays as zeros. The copy carries no masks
    (``shrink.pruning.masks``): it is a plain dense model. The copy's outputs on
    ``inputs`` must equal the masked model's to float tolerance, else :class:`RemovalMismatch`.
    ``model`` itself is not modified.
    """
    pruned = copy.deepcopy(model)
    remove_masks(pruned)
    params = dict(pruned.named_parameters())
    unknown = sorted(set(masks) - set(params))
    if unknown:
        raise ValueError(f"masks name parameters the model does not have: {', '.join(unknown[:5])}")
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask.to(params[name].device))
    training = pruned.training
    pruned.eval()
    with torch.no_grad(), _full_float32():
        expected = pruned(inputs)
    traced = trace_channels(pruned, inputs)
    removals = []
    for group in traced.groups:
        cleared = torch.ones(group.channels, dtype=torch.bool)
        for s in group.slices:
            if s.param not in masks:
                cleared[:] = False
                break
            alive = masks[s.param].cpu().index_select(s.dim, s.index).movedim(s.dim, 0).reshape(len(s.index), -1).any(1)
            cleared[s.channel[alive]] = False
        channels = cleared.nonzero().flatten().tolist()[: group.channels - 1]
        if channels:
            removals.append((traced.modules[group.root], channels))
    for root, channels in removals:
        pruner = traced.graph.get_pruner_of_module(root)
        traced.graph.get_pruning_group(root, pruner.prune_out_channels, channels).prune()
    with torch.no_grad(), _full_float32():
        actual = pruned(inputs)
    pruned.train(training)
    if actual.shape != expected.shape or not torch.allclose(actual, expected, rtol=RTOL, atol=ATOL):
        worst = (actual - expected).abs().max().item() if actual.shape == expected.shape else float("nan")
        raise RemovalMismatch(
            f"the physically pruned model differs from the masked one (max abs difference {worst:.3g}, "
            f"shapes {tuple(actual.shape)} vs {tuple(expected.shape)}): the dependency graph mis-modelled a coupling"
        )
    return pruned


@contextlib.contextmanager
def _full_float32():
    """Convolutions and matmuls in full float32 (no TF32 on GPUs), so that both passes compare exactly."""
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
