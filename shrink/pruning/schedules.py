"""Pruning schedules: when, during fine-tuning, to prune and to which compression.

A schedule is a list of pruning events ``(step, compression)``: before optimizer step ``step``
(counted from 0 over the whole fine-tuning) the model is pruned to ``compression``. The last event
always reaches exactly the target.

- ``one-shot`` (Algorithm 1 of Blalock et al. 2020): prune once, then fine-tune.
- ``iterative`` (Han et al. 2015): ``rounds`` rounds of prune then fine-tune, the fine-tuning epochs
  shared equally between rounds; round ``i`` reaches ``compression ** (i / rounds)``, so every round
  removes the same share of what is left (a geometric path).
- ``gradual`` (Zhu & Gupta 2017): prune every ``every`` steps, ``rounds`` times, along the cubic
  sparsity curve ``s_j = s (1 - (1 - j / rounds) ** 3)``, where sparsity ``s = 1 - 1 / compression``.
"""

from dataclasses import dataclass

SCHEDULES = ("one-shot", "iterative", "gradual")


@dataclass(frozen=True)
class Schedule:
    """A pruning schedule by name; ``rounds`` counts pruning events (iterative, gradual) and ``every``
    is the number of optimizer steps between gradual events."""

    name: str = "one-shot"
    rounds: int = 1
    every: int = 0

    def __post_init__(self):
        if self.name not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.name!r}; known: {', '.join(SCHEDULES)}")
        if self.name == "one-shot" and (self.rounds, self.every) != (1, 0):
            raise ValueError("schedule 'one-shot' prunes once: it takes neither rounds nor every")
        if self.name != "one-shot" and self.rounds < 2:
            raise ValueError(f"schedule {self.name!r} needs rounds >= 2, got {self.rounds}")
        if (self.name == "gradual") != (self.every > 0):
            raise ValueError(f"'every' (steps between events) is for schedule 'gradual' only and must be >= 1 there; "
                             f"got every={self.every} for {self.name!r}")

    def events(self, compression: float, epochs: int, steps_per_epoch: int) -> list[tuple[int, float]]:
        """The ``(step, compression)`` pruning events for a fine-tuning of ``epochs`` x ``steps_per_epoch``
        steps, ending exactly at ``compression``; ValueError when they do not fit in the fine-tuning."""
        if compression < 1:
            raise ValueError(f"compression must be >= 1, got {compression}")
        if self.name == "one-shot":
            return [(0, compression)]
        if self.name == "iterative":
            if epochs < self.rounds:
                raise ValueError(f"iterative schedule: {self.rounds} rounds need at least {self.rounds} fine-tuning epochs, got {epochs}")
            steps = [(i * epochs // self.rounds) * steps_per_epoch for i in range(self.rounds)]
            ratios = [compression ** ((i + 1) / self.rounds) for i in range(self.rounds)]
        else:
            last = (self.rounds - 1) * self.every
            if last >= epochs * steps_per_epoch:
                raise ValueError(
                    f"gradual schedule: {self.rounds} events every {self.every} steps end at step {last}, "
                    f"but fine-tuning has {epochs * steps_per_epoch} steps ({epochs} epochs x {steps_per_epoch})"
                )
            sparsity = 1 - 1 / compression
            steps = [j * self.every for j in range(self.rounds)]
            ratios = [1 / (1 - sparsity * (1 - (1 - (j + 1) / self.rounds) ** 3)) for j in range(self.rounds)]
        ratios[-1] = compression
        return list(zip(steps, ratios))
