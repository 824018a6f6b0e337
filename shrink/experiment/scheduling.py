"""Running a pruning schedule inside fine-tuning: the events after the first happen between optimizer
steps, as the training batches are drawn (see ``shrink.pruning.schedules`` for the events themselves)."""

from collections.abc import Callable, Iterable, Iterator


class ScheduledPruning:
    """The pending pruning events of a trial, fired by the batches of each fine-tuning epoch.

    ``prune(compression)`` prunes the model to ``compression`` and returns the new masks (the optimizer's
    mask hook picks them up at the next step). Steps are counted over the whole fine-tuning, so a trial
    resumed after epoch ``e`` keeps only the events from step ``e x steps_per_epoch`` on.
    """

    def __init__(self, events: list[tuple[int, float]], prune: Callable[[float], dict],
                 steps_per_epoch: int, epochs_done: int, masks: dict):
        self.steps_per_epoch = steps_per_epoch
        self._pending = [event for event in events if event[0] >= epochs_done * steps_per_epoch and event[0] > 0]
        self._prune = prune
        self.masks = masks  # the current masks: those given, then each event's

    def batches(self, batches: Iterable, epoch: int) -> Iterator:
        """``batches`` of fine-tuning epoch ``epoch`` (1-based), pruning before each step that has an event."""
        step = (epoch - 1) * self.steps_per_epoch
        for batch in batches:
            while self._pending and self._pending[0][0] <= step:
                self.masks = self._prune(self._pending.pop(0)[1])
            yield batch
            step += 1

    @property
    def reached_target(self) -> bool:
        """Whether every event has fired: only then does the model have its final compression, so only
        then may it be kept as the best one or stop early."""
        return not self._pending
