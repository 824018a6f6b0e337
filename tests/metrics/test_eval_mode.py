"""eval_mode gives every module back its own mode, including modules deliberately left in eval mode."""

import torch
from torch import nn

from shrink.eval_mode import eval_mode
from shrink.metrics import evaluate, macs
from shrink.pruning import prune


def _partly_frozen():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))
    model.train()
    model[1].eval()  # frozen BatchNorm statistics while fine-tuning the rest
    return model


def _modes(model):
    return [module.training for module in model.modules()]


def test_modes_are_restored_module_by_module():
    model = _partly_frozen()
    with eval_mode(model):
        assert _modes(model) == [False] * 5
    assert _modes(model) == [True, True, False, True, True]


def test_metrics_and_data_driven_pruning_leave_the_modes_as_they_were():
    model = _partly_frozen()
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    evaluate(model, [(x, y)])
    macs(model, x)
    prune(model, "global-gradient", 1.5, inputs=x, targets=y, prune_classifier=True)
    prune(model, "global-activation", 1.5, inputs=x, targets=y, prune_classifier=True)
    assert _modes(model) == [True, True, False, True, True]
