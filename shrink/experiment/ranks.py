"""The ranks of a data-parallel trial: which of the processes sharing one trial this is, and the few
collective operations a trial needs (sums, a broadcast from rank 0, a cross-rank checksum, the DDP wrapper).

Only ``torch.distributed`` is used here; whoever starts the processes and the process group (Ray Train,
in ``shrink.orchestrator``) is not this module's business. Without a process group a trial is one
process and every operation below is the identity, so single-process trials run exactly as before.

What a data-parallel trial means, in one sentence: ``finetune.batch_size`` is the global batch, split
evenly over the workers; every epoch has one seeded permutation of the training split, of which each
worker takes its share of each global batch; evaluation reads every example of val and test exactly
once across the workers and sums the counts, so top-1/top-5 are exact (``shrink.datasets.Shard``).

Decisions:

- **Pruning happens once**, on rank 0, on the same seeded batch as a single-process trial; the masks are
  broadcast and every rank then compares a checksum of the masks it holds (:meth:`Ranks.check_same`),
  failing loudly on a difference. Rank 0 alone writes to MLflow and saves checkpoints; early-stopping
  decisions follow from validation scores that rank 0 broadcasts, so every rank decides alike.
- **Per-worker BatchNorm, not SyncBatchNorm.** Each worker normalises with the statistics of its own
  ``batch_size / workers`` examples, as the reference data-parallel ImageNet recipes do (Goyal et al.
  2017 keep BatchNorm per worker at 32 images per GPU; 256 over 8 GPUs is exactly that), and rank 0's
  running statistics are copied to every worker after each epoch (:meth:`Ranks.share_buffers`),
  so the weights evaluated and saved are the same everywhere. SyncBatchNorm was rejected: it adds two
  collectives per BatchNorm layer per step (about 40 per step for ResNet-18), PyTorch runs it on GPUs
  only (so CPU trials with gloo could not use it), and the fine-tuning batches here are not small enough
  for per-worker statistics to hurt. The consequence: a model with BatchNorm trained on N workers is not
  bit-for-bit the single-process model (its batch statistics come from fewer examples); a model without
  BatchNorm is, up to float summation order. The run's ``shrink.workers`` tag records N.
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from shrink.datasets import Shard


class RankMismatch(RuntimeError):
    """The workers of one data-parallel trial hold different masks or weights where they must agree."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in a trial's data-parallel group: ``rank`` of ``size`` processes, collective
    tensors on ``device`` (the GPU for NCCL, else the CPU). ``Ranks()`` (:data:`ONE_PROCESS`) is a single
    process."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"

    @classmethod
    def current(cls) -> "Ranks":
        """The group ``torch.distributed`` was initialised with (by Ray Train), else a single process."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
        return cls(dist.get_rank(), dist.get_world_size(), device)

    @property
    def primary(self) -> bool:
        """Rank 0: the one that records and saves."""
        return self.rank == 0

    @property
    def shard(self) -> Shard:
        """This process's share of the data."""
        return Shard(self.rank, self.size)

    def sum(self, values: Sequence[float]) -> list[float]:
        """``values`` summed element-wise over every rank (float64)."""
        if self.size == 1:
            return list(values)
        import torch.distributed as dist

        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.tolist()

    def broadcast(self, value):
        """Rank 0's ``value`` (any picklable object; tensors come back on the CPU) on every rank."""
        if self.size == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0, device=torch.device(self.device))
        return box[0]

    def check_same(self, what: str, tensors: Mapping[str, torch.Tensor]) -> None:
        """Raise :class:`RankMismatch` unless every rank holds bit-identical ``tensors`` (compared by a
        SHA-256 checksum of names, dtypes, shapes and bytes)."""
        if self.size == 1:
            return
        import torch.distributed as dist

        checksums = [None] * self.size
        dist.all_gather_object(checksums, checksum(tensors))
        if len(set(checksums)) > 1:
            groups = {}
            for rank, value in enumerate(checksums):
                groups.setdefault(value, []).append(rank)
            differ = "; ".join(f"ranks {ranks} hold {value[:12]}" for value, ranks in groups.items())
            raise RankMismatch(f"{what} differ across the {self.size} workers of this trial: {differ}")

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` under DistributedDataParallel (gradients averaged over the ranks at each step), or
        ``model`` itself for a single process. Buffers are not broadcast at each forward pass (masks never
        change there; BatchNorm statistics are shared after each epoch by :meth:`share_buffers`)."""
        if self.size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
        # The same setting under its newer name where torch has it (the old one warns there).
        no_sync = "forward_sync_buffers" if "forward_sync_buffers" in _ddp_parameters() else "broadcast_buffers"
        return DistributedDataParallel(model, device_ids=device_ids, **{no_sync: False})

    def share_buffers(self, model: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics, masks) to every rank, in place."""
        if self.size == 1:
            return
        import torch.distributed as dist

        for buffer in model.buffers():
            if buffer.device.type == torch.device(self.device).type:
                dist.broadcast(buffer, src=0)
            else:  # e.g. CPU buffers of a model a NCCL group trains: round trip through the device
                moved = buffer.to(self.device)
                dist.broadcast(moved, src=0)
                buffer.copy_(moved)


def _ddp_parameters() -> set[str]:
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    return set(inspect.signature(DistributedDataParallel).parameters)


def checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``tensors`` in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


ONE_PROCESS = Ranks()
