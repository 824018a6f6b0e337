"""evaluate(): exact counts over every example, not a mean of per-batch means."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from shrink.metrics import evaluate


def _batches():
    # Logits are the inputs (nn.Identity). Six classes, ranked 5 > 4 > ... > 0 unless stated.
    ranked = torch.arange(6.0)
    first = (ranked.repeat(3, 1), torch.tensor([5, 1, 0]))  # top-1 hit, top-5 hit, miss
    second = (ranked.flip(0).view(1, 6), torch.tensor([0]))  # a short last batch: top-1 hit
    return [first, second]


def test_accuracy_and_loss_are_exact_over_all_examples():
    result = evaluate(nn.Identity(), _batches())
    logits = torch.cat([x for x, _ in _batches()])
    targets = torch.cat([y for _, y in _batches()])
    assert result.n == 4
    assert result.top1 == 2 / 4  # per-batch means would give (1/3 + 1) / 2
    assert result.top5 == 3 / 4
    assert result.loss == pytest.approx(float(F.cross_entropy(logits, targets)), rel=1e-6)


def test_top5_is_top_k_of_fewer_classes_and_the_mode_is_restored():
    model = nn.Linear(3, 2)
    model.train()
    result = evaluate(model, [(torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1]))])
    assert result.top5 == 1.0 and model.training


def test_no_examples_is_an_error():
    with pytest.raises(ValueError, match="evaluate\\(\\) got no examples"):
        evaluate(nn.Linear(3, 2), [])
