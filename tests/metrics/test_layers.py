"""The per-layer table: one row per module owning parameters, exact counts."""

import torch
from torch import nn

from shrink.metrics import layer_table, model_size


def test_layer_table_rows_are_exact():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(18, 3))
    with torch.no_grad():
        model[0].weight.view(-1)[:6] = 0
        model[1].bias.fill_(0.5)
        model[3].bias.zero_()
    table = layer_table(model, torch.randn(2, 1, 5, 5))
    assert list(table.columns) == ["name", "shape", "params", "nonzero", "density", "macs"]
    assert table.to_dict("records") == [
        {"name": "0", "shape": "2x1x3x3", "params": 20, "nonzero": 14, "density": 14 / 20, "macs": 9 * 18},
        {"name": "1", "shape": "2", "params": 4, "nonzero": 4, "density": 1.0, "macs": 0},
        {"name": "3", "shape": "3x18", "params": 57, "nonzero": 54, "density": 54 / 57, "macs": 54},
    ]
    assert table["params"].sum() == model_size(model)[0]
