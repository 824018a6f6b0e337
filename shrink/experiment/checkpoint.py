"""Trial checkpoints: the small interface through which a trial saves its state every epoch and
resumes from the last one (the orchestrator supplies a Ray Tune implementation)."""

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

