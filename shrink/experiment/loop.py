"""The one training loop, shared by pretraining and fine-tuning: optimizer construction, the epochs of a
run (:func:`run_epochs`: learning rate, one training pass over ``Split.batches``, evaluation on the
validation split), early stopping, and evaluation over a whole split."""

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shrink.experiment.ranks import ONE_PROCESS, Ranks
from shrink.experiment.errors import TrialDiverged
from shrink.experiment.recipes import Recipe
from shrink.experiment.runtime import AmpMode, compile_default, compile_mode, device_amp
from shrink.metrics import Scores

# Evaluation batches hold about this many input values (large batches, bounded memory), and at least
# EVAL_MIN_BATCH examples: ImageNet's would be 55, too few to keep a GPU busy (its ResNet-18 step would be
# launch-bound) and a batch of 256 224 px images is 154 MB of float32 input.
EVAL_BATCH_VALUES = 2**23
EVAL_MIN_BATCH = 256
# On GPU, check the running loss for NaN/inf every this many steps (each check synchronizes).
DIVERGENCE_CHECK_STEPS = 25


@dataclass(frozen=True)
class Compute:
    """Where and how tensors are computed: the device, mixed precision, channels-last convolutions, and
    whether the model's forward pass (and so its backward) runs compiled by ``torch.compile``."""

    device: str = "cpu"
    amp: AmpMode = AmpMode.OFF
    channels_last: bool = False
    compile: bool = False

    @classmethod
    def for_model(cls, model: nn.Module, device: str, amp: bool | None = None,
                  compile: bool | None = None) -> "Compute":
        """The defaults: mixed precision on CUDA in the device's mode (``runtime.amp_mode``; ``amp``
        overrides whether; on CPU it is opt-in, since it changes the numbers), channels-last memory for
        convolutional nets (measured on this project's 2-core CPU, eager: 1.25x for resnet20 and 1.45x for
        small-cnn per training step) but compiled on a CPU (there inductor's NCHW code was the faster: a
        resnet20 step compiled NCHW was 1.02-1.19x eager channels-last's, compiled channels-last 1.00x),
        compiled steps where ``runtime.compile_default`` says (``compile`` overrides it)."""
        compiled = compile_default(device) if compile is None else compile
        convolutional = any(isinstance(m, nn.Conv2d) for m in model.modules())
        mixed = device.startswith("cuda") if amp is None else amp
        return cls(device, amp=device_amp(device) if mixed else AmpMode.OFF,
                   channels_last=convolutional and not (compiled and torch.device(device).type == "cpu"),
                   compile=compiled)

    def autocast(self):
        """Autocast to bf16 or fp16 as ``amp`` says, else a no-op context."""
        dtype = torch.float16 if self.amp is AmpMode.FP16 else torch.bfloat16
        return torch.autocast(torch.device(self.device).type, dtype=dtype, enabled=self.amp is not AmpMode.OFF)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A run's loss scaler: dynamic scaling for fp16 (whose small gradients would underflow), else a
        pass-through."""
        return torch.amp.GradScaler(torch.device(self.device).type, enabled=self.amp is AmpMode.FP16)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the memory format the model expects."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device (channels-last when asked)."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def compiled(self, model: nn.Module) -> nn.Module:
        """What computes ``model``'s forward pass (and so its backward): ``model`` itself, or when ``compile``
        a ``torch.compile`` wrapper around it. The wrapper shares the model's parameters and buffers, which
        are its graph's inputs: weights zeroed in place (pruning) are read as they are, with no recompile.
        Compiled graphs are cached per process and architecture (its ``forward``), by grad mode and batch
        shape (dynamic from the second shape on): a new wrapper, or a new model of the same architecture,
        reuses them (measured), and the model itself stays plain for hooks, ``copy.deepcopy`` and saving."""
        if not self.compile:
            return model
        return torch.compile(model, mode=compile_mode(torch.device(self.device).type))

    def step_begin(self) -> None:
        """Mark a new training step: compiled on CUDA, the step's CUDA graphs may then reuse the memory of
        the last step's outputs (which the loop no longer reads)."""
        if self.compile and self.device.startswith("cuda"):
            torch.compiler.cudagraph_mark_step_begin()


@dataclass(frozen=True)
class EpochStats:
    """One training epoch: mean loss per example, examples seen, seconds spent."""

    loss: float
    n: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else math.inf


@dataclass(frozen=True)
class RateSchedule:
    """The learning rate of each epoch (1-based) of a run: ``recipe``'s schedule replayed from its epoch
    ``start`` (0-based), so pretraining is ``start=0`` and ``lr-rewind`` starts ``T - E`` epochs in."""

    recipe: Recipe
    start: int = 0

    def apply(self, optimizer: torch.optim.Optimizer, epoch: int) -> None:
        """Use epoch ``epoch``'s rate for every parameter group."""
        rate = self.recipe.rate(self.start + epoch - 1)
        for group in optimizer.param_groups:
            group["lr"] = rate


@dataclass
class EarlyStopping:
    """Keeps the best validation score and counts the epochs since it last improved by more than
    ``min_delta``; ``exhausted`` once ``patience`` epochs in a row did not."""

    patience: int
    min_delta: float
    best_epoch: int = 0
    best_score: float = -math.inf
    bad_epochs: int = 0

    def update(self, epoch: int, score: float) -> bool:
        """Count epoch ``epoch``'s ``score``; True when it is the new best."""
        if score > self.best_score + self.min_delta:
            self.best_epoch, self.best_score, self.bad_epochs = epoch, score, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def exhausted(self) -> bool:
        return self.bad_epochs >= self.patience


@dataclass(frozen=True)
class Epoch:
    """What one epoch of :func:`run_epochs` did: its training pass and the validation scores after it."""

    number: int
    stats: EpochStats
    val: Scores
    seconds: float  # training and validation together


def run_epochs(model: nn.Module, optimizer: torch.optim.Optimizer, train, val, compute: Compute, *,
               epochs: range, batch_size: int, seed: int, rates: RateSchedule | None = None,
               batches: Callable[[Iterable, int], Iterable] | None = None,
               stop: Callable[[], bool] | None = None, ranks: Ranks = ONE_PROCESS,
               scaler: torch.amp.GradScaler | None = None) -> Iterator[Epoch]:
    """Train over ``epochs`` (1-based numbers) and yield each :class:`Epoch` after evaluating on ``val``.

    Each epoch first asks ``stop()`` (when given) whether to end, sets its rate from ``rates`` (else the
    optimizer's stays), then trains on ``train`` shuffled with :func:`epoch_seed`; ``batches(batches,
    epoch)`` may wrap the batches (scheduled pruning); the loss is scaled by ``scaler`` (the run's, which a
    resumed run restores; default a new ``compute.grad_scaler()``). Raises :class:`TrialDiverged` naming
    the epoch.

    In a data-parallel group (``ranks``) the model trains under DDP on this rank's shard of each
    global batch of ``batch_size``; after each epoch rank 0's buffers (BatchNorm statistics) are copied to
    every rank, the ranks check that they hold the same weights and masks, and rank 0's validation scores
    are every rank's, so decisions taken on them are the same everywhere.
    """
    trained = ranks.wrap(model)
    scaler = compute.grad_scaler() if scaler is None else scaler
    for number in epochs:
        if stop is not None and stop():
            return
        started = time.perf_counter()
        if rates is not None:
            rates.apply(optimizer, number)
        drawn = train.batches(batch_size, train=True, device=compute.device, seed=epoch_seed(seed, number),
                              shard=ranks.shard)
        try:
            stats = train_epoch(trained, optimizer, drawn if batches is None else batches(drawn, number), compute,
                                ranks, scaler)
        except TrialDiverged as error:
            raise TrialDiverged(f"epoch {number}: {error}") from None
        ranks.share_buffers(model)
        ranks.check_same(f"the weights and masks after epoch {number}", model.state_dict())
        scores = ranks.broadcast(evaluate_split(model, val, compute, ranks))
        yield Epoch(number, stats, scores, time.perf_counter() - started)


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
                ranks: Ranks = ONE_PROCESS, scaler: torch.amp.GradScaler | None = None) -> EpochStats:
    """One pass over ``batches`` (pairs of input and label tensors already on the device), minimizing
    cross-entropy, the loss scaled by ``scaler`` (the run's, default a new ``compute.grad_scaler()``).
    Raises :class:`TrialDiverged` as soon as the loss is NaN or infinite (on any rank of a data-parallel
    group: every rank raises at the same step). The stats are over all ranks' examples."""
    scaler = compute.grad_scaler() if scaler is None else scaler
    model.train()
    forward = compute.compiled(model)
    check_every = DIVERGENCE_CHECK_STEPS if compute.device.startswith("cuda") else 1
    start = time.perf_counter()
    total = torch.zeros((), device=compute.device)
    n = step = 0
    for step, (x, y) in enumerate(batches, 1):
        compute.step_begin()
        with compute.autocast():
            loss = F.cross_entropy(forward(compute.inputs(x)), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skipped where fp16 gradients overflowed; the scale then shrinks
        scaler.update()
        total += loss.detach().float() * len(y)
        n += len(y)
        if step % check_every == 0:
            _check_finite(total, step, ranks)
    if n == 0:
        raise ValueError("training batches were empty")
    _check_finite(total, step, ranks)
    if ranks.size == 1:
        return EpochStats(loss=total.item() / n, n=n, seconds=time.perf_counter() - start)
    loss, n = ranks.sum([total.item(), n])
    return EpochStats(loss=loss / n, n=int(n), seconds=time.perf_counter() - start)


def evaluate_split(model: nn.Module, split, compute: Compute, ranks: Ranks = ONE_PROCESS) -> Scores:
    """``shrink.metrics.evaluate`` over the whole ``split`` (a ``shrink.datasets.Split``) in fixed order, in
    large batches, without gradients. In a data-parallel group each rank counts its block of the split and
    the counts are summed, so every example counts exactly once."""
    from shrink import metrics

    model.eval()
    with torch.inference_mode(), compute.autocast():
        batches = split.batches(eval_batch_size(split.info.input_shape), train=False, device=compute.device,
                                shard=ranks.shard)
        counts = metrics.count_correct(compute.compiled(model), _prepared(batches, compute), device=compute.device)
    if ranks.size > 1:
        top1, top5, loss, n = ranks.sum([counts.top1, counts.top5, counts.loss, counts.n])
        counts = metrics.Counts(round(top1), round(top5), loss, round(n))
    return counts.scores()


def eval_batch_size(input_shape: tuple[int, ...]) -> int:
    """A large evaluation batch whose inputs hold about ``EVAL_BATCH_VALUES`` floats (``EVAL_MIN_BATCH`` to 4096)."""
    return max(EVAL_MIN_BATCH, min(4096, EVAL_BATCH_VALUES // math.prod(input_shape)))


def _prepared(batches: Iterable, compute: Compute) -> Iterator:
    for x, y in batches:
        yield compute.inputs(x), y


def _check_finite(total: torch.Tensor, step: int, ranks: Ranks) -> None:
    finite = bool(torch.isfinite(total))
    if ranks.size > 1:  # decided together, so that no rank waits for one that has stopped
        finite = ranks.sum([0.0 if finite else 1.0])[0] == 0
    if not finite:
        where = "" if ranks.size == 1 else " on a worker"
        raise TrialDiverged(f"training loss became {total.item()}{where} by step {step} of the epoch")
