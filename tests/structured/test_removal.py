"""The physically pruned model is smaller and computes what the masked model computes."""

import copy

import pytest
import torch
from torch import nn

from shrink.pruning.channels import CHANNEL_TOLERANCE, RemovalMismatch, channel_masks, physically_prune


def masked_copy(model, masks):
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in masked.named_parameters():
            if name in masks:
                p.mul_(masks[name])
    return masked


@pytest.mark.parametrize("criterion,scope,compression", [("l1", "global", 2.0), ("l2", "layer", 4.0), ("bn", "global", 3.0)])
def test_pruned_model_equals_masked_model(net, criterion, scope, compression):
    name, model, shape = net
    if criterion == "bn" and name == "mlp":
        criterion = "l2"  # no BatchNorm to score
    trace = torch.randn(4, *shape, generator=torch.Generator().manual_seed(1))
    masks = channel_masks(model, trace, compression, criterion=criterion, scope=scope)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = physically_prune(model, masks, trace)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched

    total = sum(p.numel() for p in model.parameters())
    left = sum(p.numel() for p in pruned.parameters())
    masks_keep = sum(int(masks[n].sum()) if n in masks else p.numel() for n, p in model.named_parameters())
    assert left == masks_keep
    assert abs(total / left / compression - 1) <= CHANNEL_TOLERANCE
    for (n, dense), small in zip(model.named_parameters(), pruned.parameters()):
        if n in masks and dense.dim() > 1:  # every row and column the masks clear entirely is gone
            rows = masks[n].flatten(2).any(2) if dense.dim() > 2 else masks[n]
            assert small.shape[:2] == (int(rows.any(1).sum()), int(rows.any(0).sum())), n

    masked = masked_copy(model, masks)
    fresh = torch.randn(16, *shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(pruned.eval()(fresh), masked.eval()(fresh), rtol=1e-4, atol=1e-5)
        # In training mode BatchNorm uses batch statistics; a zeroed channel stays zero there too.
        torch.testing.assert_close(pruned.train()(fresh), masked.train()(fresh), rtol=1e-4, atol=1e-5)


def test_coupling_the_graph_misses_fails_loudly():
    class ChannelCentring(nn.Module):
        """Subtracts the mean over channels: a zeroed channel still shifts the others."""

        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
            self.fc = nn.Linear(8, 4)
            self.fc.is_classifier = True

        def forward(self, x):
            x = self.a(x)
            return self.fc(self.b(x - x.mean(1, keepdim=True) + 1).mean((2, 3)))

    torch.manual_seed(0)
    model = ChannelCentring()
    with torch.no_grad():
        model.a.weight[0].mul_(0.001)  # channel 0 of a goes first
        model.a.bias.fill_(10.0)  # the other channels' mean moves by 10 / 8 once it is gone
    # One channel of a: 27 + 1 + 8 x 9 = 100 of 844 parameters.
    with pytest.raises(RemovalMismatch, match="differs from the masked one"):
        channel_masks(model, torch.randn(2, 3, 8, 8), 844 / 744, criterion="l1", scope="global")
