"""Property: on any small Linear/Conv network, every weight strategy hits the requested compression exactly
(channel strategies reach it to within a tolerance: tests/structured)."""

import copy

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from shrink.metrics import model_size
from shrink.pruning import max_compression, prune, strategies

MATCHED = ["random-matched:global-gradient", "magnitude-matched:layer-activation"]


@st.composite
def networks(draw):
    """A random MLP or Conv1d/2d/3d stack (strides, padding, dilation, groups, BatchNorm) with a batch."""
    dims = draw(st.sampled_from([0, 1, 2, 3]))  # 0: an MLP on flat inputs
    classes = draw(st.integers(2, 5))
    layers: list[nn.Module] = []
    if dims == 0:
        shape = (draw(st.integers(1, 12)),)
        width = shape[0]
        for out in draw(st.lists(st.integers(1, 12), max_size=3)):
            layers += [nn.Linear(width, out, bias=draw(st.booleans())), nn.ReLU()]
            width = out
    else:
        groups = draw(st.sampled_from([1, 2]))
        channels, size = groups * draw(st.integers(1, 2)), 7 if dims < 3 else 5
        shape = (channels, *[size] * dims)
        conv, norm = [nn.Conv1d, nn.Conv2d, nn.Conv3d][dims - 1], [nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d][dims - 1]
        for _ in range(draw(st.integers(1, 3))):
            out = groups * draw(st.integers(1, 3))
            kernel, stride, padding, dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 2)),
                                                 draw(st.integers(0, 1)), draw(st.integers(1, 2)))
            if dilation * (kernel - 1) + 1 > size + 2 * padding:
                kernel, dilation = 1, 1
            layers.append(conv(channels, out, kernel, stride, padding, dilation, groups, bias=draw(st.booleans())))
            if draw(st.booleans()):
                layers.append(norm(out))
            layers.append(nn.ReLU())
            channels, size = out, (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
        layers.append(nn.Flatten())
        width = channels * size**dims
    layers.append(nn.Linear(width, classes))
    torch.manual_seed(draw(st.integers(0, 2**16)))
    model = nn.Sequential(*layers)
    with torch.no_grad():  # no parameter starts at exactly zero (BatchNorm's bias would)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(0.5, 1.5)
    inputs = torch.randn(3, *shape)
    return model, inputs, torch.randint(0, classes, (3,))


@settings(max_examples=60, deadline=None)
@given(network=networks(), position=st.floats(0, 1), prune_classifier=st.booleans())
def test_every_strategy_keeps_round_total_over_compression_nonzero(network, position, prune_classifier):
    model, inputs, targets = network
    compression = 1 + position * (max_compression(model, prune_classifier) - 1)
    weights = [name for name, strategy in strategies().items() if strategy.structure == "weights"]
    for name in [*weights, *MATCHED]:
        pruned = copy.deepcopy(model)
        masks = prune(pruned, name, compression, inputs=inputs, targets=targets,
                      prune_classifier=prune_classifier, seed=0)
        total, nonzero = model_size(pruned)
        assert abs(nonzero - total / compression) <= 0.5, (name, compression, total, nonzero)
        assert nonzero == total - sum(int((~mask).sum()) for mask in masks.values())
