"""Model size and compression ratio over all parameters."""

import math

import torch
from torch import nn

from shrink.metrics import compression_ratio, model_size


def test_size_counts_every_parameter_and_its_nonzeros():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))  # 15 + 6 + 8 = 29
    with torch.no_grad():
        model[0].weight[0] = 0  # 4 zeros
        model[1].bias.fill_(1)
    assert model_size(model) == (29, 25)
    assert compression_ratio(model) == 29 / 25


def test_shared_parameters_count_once():
    shared = nn.Linear(3, 3, bias=False)
    assert model_size(nn.Sequential(shared, nn.ReLU(), shared)) == (9, 9)


def test_an_all_zero_model_has_infinite_compression():
    model = nn.Linear(2, 2)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    assert model_size(model) == (6, 0)
    assert compression_ratio(model) == math.inf
