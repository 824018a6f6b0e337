"""Exact accuracy over a whole data set: counts, not averages of per-batch averages."""

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from shrink.eval_mode import eval_mode


@dataclass(frozen=True)
class Scores:
    """Accuracy over a whole data set: top-1 and top-5 as fractions in [0, 1], the mean cross-entropy per
    example, and the number ``n`` of examples counted (None only where a record made before shrink kept
    it is read back: a base's sidecar)."""

    top1: float
    top5: float
    loss: float
    n: int | None


@dataclass(frozen=True)
class Counts:
    """Correct top-1 and top-5 examples, summed cross-entropy and the number of examples: what parts of a
    data set (the shards of a data-parallel evaluation) add up exactly."""

    top1: int
    top5: int
    loss: float  # summed over the examples
    n: int

    def scores(self) -> Scores:
        """The fractions these counts make: accuracies in [0, 1] and the mean loss per example."""
        if self.n == 0:
            raise ValueError("evaluate() got no examples: the batches are empty")
        return Scores(self.top1 / self.n, self.top5 / self.n, self.loss / self.n, self.n)


def evaluate(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, device: torch.device | str | None = None
) -> Scores:
    """Top-1/top-5 accuracy and mean cross-entropy of ``model`` over every example of ``batches``.

    Returns :class:`Scores`: fractions of correct examples in [0, 1] counted over all
    ``n`` examples (a short last batch weighs by its size), and the loss summed per example over ``n``.
    Top-5 is top-min(5, classes). Runs in eval mode without gradients on ``device`` (default: the
    device of the model's parameters; the CPU for a model without any).
    """
    return count_correct(model, batches, device=device).scores()


def count_correct(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, device: torch.device | str | None = None
) -> Counts:
    """The :class:`Counts` behind :func:`evaluate` (zero counts for no batches). They add up on the device
    and are read once at the end: a read per batch would make the CPU wait for the device at every batch.
    (The summed loss adds each batch's float32 sum in float64, as Python's floats would.)"""
    if device is None:
        device = next(model.parameters(), torch.empty(0)).device
    loss = torch.zeros((), dtype=torch.float64, device=device)
    hits1 = torch.zeros((), dtype=torch.int64, device=device)
    hits5 = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    with eval_mode(model), torch.no_grad():
        for inputs, targets in batches:
            inputs, targets = inputs.to(device), targets.to(device)
            logits = model(inputs)
            loss += F.cross_entropy(logits.float(), targets, reduction="sum").double()
            best = logits.topk(min(5, logits.shape[1]), dim=1).indices
            hits = best == targets[:, None]
            hits1 += hits[:, 0].sum()
            hits5 += hits.any(dim=1).sum()
            n += len(targets)
    summed, top1, top5 = torch.stack([loss, hits1.double(), hits5.double()]).tolist()  # counts below 2**53: exact
    return Counts(int(top1), int(top5), summed, n)
