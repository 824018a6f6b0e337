"""One fine-tuning epoch of a pruned CIFAR ResNet: shrink's trial loop against a plain PyTorch loop
fed by a torchvision DataLoader (ShrinkBench's approach), in the same run, on the same images.

The images are synthetic (uniform noise, random labels) in the CIFAR-10 pickle format, so no download
is needed; throughput does not depend on their content. The default 10,000 images (9,000 after the
validation carve-out, a fifth of a CIFAR-10 epoch) keep the run to a few minutes on 2 cores.

Both loops fine-tune the same pruned model (global magnitude, 4x) with the CIFAR preset (Adam,
lr 3e-4, batch 64) and random-crop + flip augmentation:

- shrink: ``shrink.experiment.loop.train_epoch`` over ``Split.batches`` (tensor fast path), with the
  trial's defaults (channels-last for conv nets; bf16 autocast on CUDA, or with ``--amp``), masks kept
  by ``keep_masked``;
- plain: NCHW weights, ``DataLoader(num_workers=2)`` over PIL images with torchvision's
  ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize`` (what
  torchvision's CIFAR10 does), masks re-applied after each step as ShrinkBench does; worker start-up
  included.

The two run interleaved, ``--block`` batches at a time, so load from other processes on a shared
machine hits both alike. Prints images/s of each loop and their ratio (target on CPU: at least 1.5x).

Then, per model, shrink's training step compiled (``compile=true``: ``torch.compile`` of the forward
pass and so the backward, NCHW on a CPU, CUDA graphs on CUDA) against the same step eager twice: in the
compiled step's memory format (NCHW on a CPU: what compiling alone changes) and with the trial's eager
defaults (channels-last convolutions: what a trial would otherwise run). All three run on the same pruned
weights and random batches, interleaved ``--block`` steps at a time after each side's first two steps
(the compiled side's compilation, printed apart): lenet-5 at batch 128 on 1x28x28 inputs and resnet20
at batch 64 on 3x32x32, two lines each, ``ratio compiled/eager <model>: N.NNx`` (same memory format;
targets on the 2-core CPU: 1.3x and 1.15x) and ``ratio compiled/eager-default <model>: N.NNx`` (where the
two eager sides differ: not on CUDA, whose compiled step keeps channels-last).

    python bench/trial.py [--images 10000] [--model resnet20] [--device cpu] [--threads N] [--amp]
                          [--only plain|compiled] [--rounds 8] [--case resnet56:64:3x32x32 ...]

``--case MODEL:BATCH:CxHxW`` (repeatable) replaces the compiled comparison's two models (``bench/gpu.sh``
gives ResNet-56 at batch 64 on CUDA, whose target is 3x).

On a busy machine two torch threads can be many times slower than one; ``--threads 1`` compares like
with like (each DataLoader worker uses one thread).
"""

import argparse
import itertools
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's shrink, not an installed one

from synthetic_cifar import PILImages, write_cifar10  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)



def plain_steps(model, optimizer, masks: dict, batches, device: str) -> int:
    """Plain PyTorch fine-tuning steps over ``batches``; returns the images seen."""
    params = dict(model.named_parameters())
    model.train()
    n = 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for name, mask in masks.items():
                params[name].mul_(mask)
        n += len(y)
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000, help="synthetic training images")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the plain loop")
    parser.add_argument("--threads", type=int, help="torch threads of this process (default: torch's choice)")
    parser.add_argument("--amp", action="store_true", help="shrink loop with bf16 autocast (a trial's amp=true)")
    parser.add_argument("--block", type=int, default=10, help="batches per turn of each loop")
    parser.add_argument("--only", choices=("plain", "compiled"), help="run one comparison (default: both)")
    parser.add_argument("--rounds", type=int, default=8, help="turns of each side in the compiled comparison")
    parser.add_argument("--case", type=compiled_case, action="append",
                        help="MODEL:BATCH:CxHxW of the compiled comparison, repeatable "
                             "(default: lenet-5:128:1x28x28 and resnet20:64:3x32x32)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only != "compiled":
        against_plain(args)
    if args.only != "plain":
        for model, batch, shape in args.case or COMPILED_CASES:
            compiled_ratio(model, batch, shape, args)


# The compiled-step comparison's models, batch sizes and input shapes.
COMPILED_CASES = (("lenet-5", 128, (1, 28, 28)), ("resnet20", 64, (3, 32, 32)))


def compiled_case(text: str) -> tuple[str, int, tuple[int, ...]]:
    """``MODEL:BATCH:CxHxW`` as (model, batch, input shape)."""
    try:
        model, batch, shape = text.split(":")
        return model, int(batch), tuple(int(n) for n in shape.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MODEL:BATCH:CxHxW (e.g. resnet56:64:3x32x32)") from None


@dataclass
class Side:
    """One side of the compiled comparison: its model, optimizer and compute, and what it has timed."""

    label: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    compute: object  # shrink.experiment.loop.Compute
    first_s: float  # its first two steps (the compiled side compiles in them)
    seconds: float = 0.0
    images: int = 0

    def describe(self) -> str:
        return (f"{self.label} {self.images / self.seconds:.1f} images/s "
                f"(channels_last={self.compute.channels_last}, first two steps {self.first_s:.1f} s)")


def compiled_ratio(name: str, batch: int, shape: tuple[int, ...], args) -> None:
    """Print the compiled step's images/s over the eager step's in the same memory format and with the
    trial's eager defaults, for ``name`` pruned 4x (global magnitude)."""
    import dataclasses

    from shrink import models, pruning
    from shrink.experiment import FINETUNE_PRESETS
    from shrink.experiment.loop import Compute, make_optimizer, train_epoch

    torch.manual_seed(0)
    dense = models.create(name, num_classes=10, input_shape=shape).state_dict()
    batches = [(torch.randn(batch, *shape, device=args.device), torch.randint(0, 10, (batch,), device=args.device))
               for _ in range(4)]
    probe = models.create(name, num_classes=10, input_shape=shape)
    compiled_compute = Compute.for_model(probe, args.device, amp=args.amp or None, compile=True)
    computes = {"eager": dataclasses.replace(compiled_compute, compile=False),
                "eager-default": Compute.for_model(probe, args.device, amp=args.amp or None, compile=False),
                "compiled": compiled_compute}
    if computes["eager"] == computes["eager-default"]:  # on CUDA a compiled step keeps channels-last
        del computes["eager-default"]
    sides = []
    for label, compute in computes.items():
        model = models.create(name, num_classes=10, input_shape=shape)
        model.load_state_dict(dense)
        model = compute.prepare(model)
        pruning.prune(model, "global-magnitude", 4.0)
        optimizer = make_optimizer(model, FINETUNE_PRESETS["cifar"])
        pruning.keep_masked(model, optimizer)
        start = time.perf_counter()
        train_epoch(model, optimizer, batches[:2], compute)
        sides.append(Side(label, model, optimizer, compute, time.perf_counter() - start))
    for _ in range(args.rounds):
        for side in sides:
            steps = (batches[i % len(batches)] for i in range(args.block))
            start = time.perf_counter()
            side.images += train_epoch(side.model, side.optimizer, steps, side.compute).n
            side.seconds += time.perf_counter() - start
    *eagers, compiled = sides
    print(f"{name}, batch {batch}, {args.rounds * args.block} steps a side on {args.device}: "
          + "; ".join(side.describe() for side in sides))
    for eager in eagers:
        print(f"ratio compiled/{eager.label} {name}: {eager.seconds / compiled.seconds:.2f}x")


def against_plain(args) -> None:
    """Print shrink's loop against the plain loop, images/s of each and their ratio."""
    import torchvision.transforms as T

    from shrink import datasets, models, pruning
    from shrink.experiment import FINETUNE_PRESETS
    from shrink.experiment.loop import Compute, make_optimizer, train_epoch
    from shrink.experiment.runtime import hardware

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="shrink-bench-") as tmp:
        images, labels = write_cifar10(Path(tmp), args.images, 1000)
        train = datasets.load("cifar10", "train", root=tmp)
        model = models.create(args.model, num_classes=10)
        compute = Compute.for_model(model, args.device, amp=args.amp or None)
        model = compute.prepare(model)
        masks = pruning.prune(model, "global-magnitude", 4.0)
        optimizer = make_optimizer(model, FINETUNE_PRESETS["cifar"])
        pruning.keep_masked(model, optimizer)

        plain_model = models.create(args.model, num_classes=10).to(args.device)  # contiguous (NCHW) weights
        plain_model.load_state_dict({k: v for k, v in model.state_dict().items() if k in plain_model.state_dict()})
        plain_optimizer = torch.optim.Adam(plain_model.parameters(), lr=3e-4)
        n = len(train)  # the same images as shrink's training split
        transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                               T.Normalize(MEAN, STD)])
        loader = torch.utils.data.DataLoader(PILImages(images[:n], labels[:n], transform), batch_size=64,
                                             shuffle=True, drop_last=True, num_workers=args.workers,
                                             pin_memory=args.device.startswith("cuda"))
        print(f"{args.model}, {n:,} synthetic CIFAR-shaped images, batch 64, on {args.device} "
              f"({hardware(args.device)}), amp={compute.amp}, channels_last={compute.channels_last}")

        shrink_batches = train.batches(64, train=True, device=args.device, seed=1)
        plain_batches = iter(loader)
        totals = {"shrink": [0, 0.0], "plain": [0, 0.0]}
        for _ in range(0, n // 64, args.block):
            start = time.perf_counter()
            stats = train_epoch(model, optimizer, itertools.islice(shrink_batches, args.block), compute)
            totals["shrink"][0] += stats.n
            totals["shrink"][1] += time.perf_counter() - start
            start = time.perf_counter()
            totals["plain"][0] += plain_steps(plain_model, plain_optimizer, masks,
                                              itertools.islice(plain_batches, args.block), args.device)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            totals["plain"][1] += time.perf_counter() - start
    shrink_rate, plain_rate = (images / seconds for images, seconds in totals.values())
    print(f"shrink loop:                 {shrink_rate:8.1f} images/s")
    print(f"plain loop + DataLoader({args.workers}):  {plain_rate:8.1f} images/s")
    print(f"ratio:                       {shrink_rate / plain_rate:8.2f}x")


if __name__ == "__main__":
    main()
