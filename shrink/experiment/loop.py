"""The one training loop, shared by pretraining and fine-tuning: optimizer construction, one
training epoch over ``Split.batches``, and evaluation over a whole split."""

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shrink.experiment.distributed import SINGLE, Distributed
from shrink.experiment.errors import TrialDiverged

# Evaluation batches hold about this many input values (large batches, bounded memory).
EVAL_BATCH_VALUES = 2**23
# On GPU, check the running loss for NaN/inf every this many steps (each check synchronizes).
DIVERGENCE_CHECK_STEPS = 25


@dataclass(frozen=True)
class Compute:
    """Where and how tensors are computed: the device, bf16 autocast, channels-last convolutions."""

    device: str = "cpu"
    amp: bool = False
    channels_last: bool = False

    @classmethod
    def for_model(cls, model: nn.Module, device: str, amp: bool | None = None) -> "Compute":
        """The defaults: bf16 autocast on CUDA (``amp`` overrides it; on CPU it is opt-in, since it
        changes the numbers), channels-last memory for convolutional nets on any device (measured on
        this project's 2-core CPU: 1.25x for resnet20 and 1.45x for small-cnn per training step)."""
        convolutional = any(isinstance(m, nn.Conv2d) for m in model.modules())
        return cls(device, amp=device.startswith("cuda") if amp is None else amp, channels_last=convolutional)

    def autocast(self):
        """bf16 autocast when ``amp`` is on, else a no-op context."""
        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.amp)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the memory format the model expects."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device (channels-last when asked)."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


@dataclass(frozen=True)
class EpochStats:
    """One training epoch: mean loss per example, examples seen, seconds spent."""

    loss: float
    n: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else math.inf


def make_optimizer(model: nn.Module, recipe) -> torch.optim.Optimizer:
    """Adam or SGD over the model's parameters, from a recipe or fine-tuning config
    (``optimizer, lr, momentum, nesterov, weight_decay``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    # Fused kernels: one update per step instead of a few small ops per tensor (faster on CPU and GPU).
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                               weight_decay=recipe.weight_decay, fused=True)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; known: adam, sgd")


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling/augmentation seed of ``epoch`` in a run seeded with ``seed``."""
    return seed * 10_000 + epoch


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable, compute: Compute,
                distributed: Distributed = SINGLE) -> EpochStats:
    """One pass over ``batches`` (pairs of input and label tensors already on the device), minimizing
    cross-entropy. Raises :class:`TrialDiverged` as soon as the loss is NaN or infinite (on any rank of a
    data-parallel group: every rank raises at the same step). The stats are over all ranks' examples."""
    model.train()
    check_every = DIVERGENCE_CHECK_STEPS if compute.device.startswith("cuda") else 1
    start = time.perf_counter()
    total = torch.zeros((), device=compute.device)
    n = step = 0
    for step, (x, y) in enumerate(batches, 1):
        with compute.autocast():
            loss = F.cross_entropy(model(compute.inputs(x)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach().float() * len(y)
        n += len(y)
        if step % check_every == 0:
            _check_finite(total, step, distributed)
    if n == 0:
        raise ValueError("training batches were empty")
    _check_finite(total, step, distributed)
    if distributed.size == 1:
        return EpochStats(loss=total.item() / n, n=n, seconds=time.perf_counter() - start)
    loss, n = distributed.sum([total.item(), n])
    return EpochStats(loss=loss / n, n=int(n), seconds=time.perf_counter() - start)


def evaluate(model: nn.Module, split, compute: Compute, distributed: Distributed = SINGLE) -> dict:
    """``shrink.metrics.evaluate`` over the whole ``split`` in fixed order, in large batches,
    without gradients: ``top1``, ``top5``, ``loss``, ``n``. In a data-parallel group each rank counts its
    block of the split and the counts are summed, so every example counts exactly once."""
    from shrink import metrics

    model.eval()
    with torch.inference_mode(), compute.autocast():
        batches = split.batches(eval_batch_size(split.info.input_shape), train=False, device=compute.device,
                                shard=distributed.shard)
        counts = metrics.count_correct(model, _prepared(batches, compute), device=compute.device)
    if distributed.size > 1:
        top1, top5, loss, n = distributed.sum([counts.top1, counts.top5, counts.loss, counts.n])
        counts = metrics.Counts(round(top1), round(top5), loss, round(n))
    return counts.fractions()


def eval_batch_size(input_shape: tuple[int, ...]) -> int:
    """A large evaluation batch whose inputs hold about ``EVAL_BATCH_VALUES`` floats (32 to 4096)."""
    return max(32, min(4096, EVAL_BATCH_VALUES // math.prod(input_shape)))


def _prepared(batches: Iterable, compute: Compute) -> Iterator:
    for x, y in batches:
        yield compute.inputs(x), y


def _check_finite(total: torch.Tensor, step: int, distributed: Distributed) -> None:
    finite = bool(torch.isfinite(total))
    if distributed.size > 1:  # decided together, so that no rank waits for one that has stopped
        finite = distributed.sum([0.0 if finite else 1.0])[0] == 0
    if not finite:
        where = "" if distributed.size == 1 else " on a worker"
        raise TrialDiverged(f"training loss became {total.item()}{where} by step {step} of the epoch")
