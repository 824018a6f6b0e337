"""Trial checkpoints: the small interface through which a trial saves its state every epoch and
resumes from the last one (the orchestrator supplies a Ray Tune implementation), and the random state
saved with it."""

import io
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from shrink.atomic import atomic_write


@runtime_checkable
class Checkpointer(Protocol):
    """Where a trial keeps its state between epochs.

    ``state`` is a dict of tensors and plain values (model, masks, optimizer, epoch, best-so-far,
    the MLflow run id); it loads with ``torch.load(weights_only=True)``.
    """

    def save(self, state: dict) -> None:
        """Keep ``state``, replacing the previous one; called after every epoch."""

    def load(self) -> dict | None:
        """The last saved state, or ``None`` when the trial starts fresh; called once on start."""


class DirectoryCheckpointer:
    """Keeps the state in ``<path>/trial.pt``, replaced atomically so a kill never leaves half a file."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.file = self.path / "trial.pt"

    def save(self, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write(self.file, buffer.getvalue())

    def load(self) -> dict | None:
        if not self.file.exists():
            return None
        return torch.load(self.file, map_location="cpu", weights_only=True)

    def __repr__(self) -> str:
        return f"DirectoryCheckpointer({str(self.path)!r})"


def rng_state(device: str) -> dict[str, torch.Tensor]:
    """torch's random state that a trial on ``device`` draws from: the CPU generator's (``cpu``) and, on
    CUDA, the GPU's (``cuda``); :func:`restore_rng` sets it back, so a resumed trial draws what the
    uninterrupted one would."""
    return {kind: generator.get_state() for kind, generator in _generators(device).items()}


def restore_rng(state: dict[str, torch.Tensor], device: str) -> None:
    """Set ``device``'s generators to what :func:`rng_state` saved (a GPU's state is left out on a CPU, and
    the GPU keeps its own when the state was saved on a CPU)."""
    for kind, generator in _generators(device).items():
        if kind in state:
            generator.set_state(state[kind])


def _generators(device: str) -> dict[str, torch.Generator]:
    """The default generators of the CPU and, for a CUDA ``device``, of that GPU (the current one when it
    has no index), by the keys checkpoints have always used."""
    generators = {"cpu": torch.default_generator}
    target = torch.device(device)
    if target.type == "cuda":
        torch.cuda.init()  # default_generators is empty until CUDA initializes
        index = torch.cuda.current_device() if target.index is None else target.index
        generators["cuda"] = torch.cuda.default_generators[index]
    return generators
