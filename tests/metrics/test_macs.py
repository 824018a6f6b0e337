"""Multiply-accumulates: hand-derived single layers, and FlopCounterMode (FLOPs / 2) on whole networks."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from shrink.metrics import layer_macs, macs, theoretical_speedup


@pytest.mark.parametrize(
    ("layer", "example_shape", "expected"),
    [
        (nn.Linear(10, 4), (10,), 10 * 4),
        (nn.Linear(10, 4), (5, 10), 5 * 10 * 4),  # 5 tokens per example
        # L_out = (9 + 2 - 2 - 1) // 2 + 1 = 5 positions, each 4 outputs x 3 inputs x 3 taps
        (nn.Conv1d(3, 4, 3, stride=2, padding=1), (3, 9), 5 * 4 * 3 * 3),
        # 5x5 positions; each of 6 outputs reads 4 / 2 = 2 channels x 9 taps
        (nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), (4, 9, 9), 25 * 6 * 2 * 9),
        (nn.Conv2d(8, 8, 3, padding=1, groups=8), (8, 6, 6), 36 * 8 * 1 * 9),  # depthwise
        (nn.Conv3d(2, 3, (1, 2, 3)), (2, 4, 5, 6), 4 * 4 * 4 * 3 * 2 * 6),
    ],
)
def test_single_layers_match_hand_counts_per_example(layer, example_shape, expected):
    assert macs(layer, torch.randn(1, *example_shape)) == (expected, expected)
    assert macs(layer, torch.randn(4, *example_shape)) == (expected, expected)


def test_nonzero_macs_scale_each_layer_by_its_weight_density():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 4))  # 9 x 18 = 162 and 72 MACs
    with torch.no_grad():
        model[0].weight.view(-1)[:9] = 0  # half the conv weights
        model[2].weight.view(-1)[:18] = 0  # a quarter of the linear weights
    inputs = torch.randn(2, 1, 5, 5)
    assert layer_macs(model, inputs) == {"0": (162, 81), "2": (72, 54)}
    assert macs(model, inputs) == (234, 135)
    assert theoretical_speedup(model, inputs) == 234 / 135


def test_a_layer_called_twice_counts_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(3, 3)

        def forward(self, x):
            return self.layer(self.layer(x))

    assert macs(Twice(), torch.randn(2, 3)) == (18, 18)


def _flop_counter_macs(model, inputs):
    with FlopCounterMode(display=False) as counter:
        model.eval()
        model(inputs)
    return counter.get_total_flops() // 2 // inputs.shape[0]


def _conv_net():
    return nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=2, padding=2),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16),  # depthwise, dilated
        nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=4),
        nn.ReLU(),
        nn.Flatten(2),
        nn.Conv1d(32, 8, 3, padding=1),
        nn.Flatten(),
        nn.Linear(8 * 64, 10),
    )


def _conv3d_net():
    return nn.Sequential(nn.Conv3d(2, 4, 3, stride=(1, 2, 2), padding=1), nn.ReLU(), nn.Conv3d(4, 4, 1, groups=2))


@pytest.mark.parametrize(
    ("make", "example_shape"),
    [
        (lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                               nn.Linear(100, 10)), (1, 28, 28)),
        (_conv_net, (3, 32, 32)),
        (_conv3d_net, (2, 4, 8, 8)),
    ],
    ids=["mlp", "conv-1d-2d", "conv-3d"],
)
def test_whole_networks_match_flop_counter_mode(make, example_shape):
    model, inputs = make(), torch.randn(2, *example_shape)
    assert macs(model, inputs)[0] == _flop_counter_macs(model, inputs)


def test_torchvision_resnet18_and_mobilenet_v2_at_224():
    import torchvision

    inputs = torch.randn(1, 3, 224, 224)
    expected_macs = {torchvision.models.resnet18: 1_814_073_344, torchvision.models.mobilenet_v2: 300_774_272}
    for make, expected in expected_macs.items():
        model = make(weights=None)
        assert macs(model, inputs)[0] == expected
        assert _flop_counter_macs(model, inputs) == expected
