"""What one pruning round kept, layer by layer: how a matched baseline under a schedule reproduces its
reference trial's allocation (torch-free, so the MLflow record of a trial can carry it)."""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PruningRound:
    """The weights one round of pruning kept in each prunable layer (keyed by weight name), at the
    round's target ``compression``."""

    compression: float
    kept: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of_masks(cls, compression: float, masks: Mapping) -> "PruningRound":
        """The round that set ``masks`` (boolean tensors by parameter name) at ``compression``."""
        return cls(float(compression), {name: int(mask.count_nonzero()) for name, mask in masks.items()})

    def to_dict(self) -> dict:
        return {"compression": self.compression, "kept": dict(self.kept)}

    @classmethod
    def from_dict(cls, values: Mapping) -> "PruningRound":
        return cls(float(values["compression"]), {str(k): int(v) for k, v in values["kept"].items()})

    def matches(self, compression: float) -> bool:
        """Whether this is the round that pruned to ``compression`` (the same float, up to rounding)."""
        return math.isclose(self.compression, compression, rel_tol=1e-9)


def round_at(rounds: list[PruningRound], compression: float) -> PruningRound:
    """The round of ``rounds`` that pruned to ``compression``; ``ValueError`` naming those recorded."""
    for recorded in rounds:
        if recorded.matches(compression):
            return recorded
    known = ", ".join(f"{r.compression:g}" for r in rounds) or "none"
    raise ValueError(f"the reference recorded no round at compression {compression:g} (it recorded: {known})")
