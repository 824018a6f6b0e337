"""Trial checkpoints that a resumed sweep can always find.

Tune's own ``CheckpointConfig(num_to_keep=1)`` deletes a trial's previous checkpoint the moment a new one
arrives, but saves the experiment state (which names each trial's checkpoint) a little later: a driver
killed in between leaves a state naming a deleted checkpoint, and ``--resume`` fails that trial with
"Could not recover from checkpoint as it does not exist on storage anymore". So Tune keeps every
checkpoint, and :class:`KeepLatestSaved` deletes a trial's older ones only once a saved experiment state
names a newer one.
"""

from ray import tune
from ray.train import Checkpoint
from ray.tune.experiment import Trial


class KeepLatestSaved(tune.Callback):
    """Deletes each trial's checkpoints older than its latest, right after Tune writes its experiment state.

    Tune writes the experiment state file and then asks its callbacks for their state (``get_state``), so
    at that call the state on disk names each trial's latest checkpoint and the older ones are unreferenced.
    """

    def __init__(self):
        self._older: dict[str, list[Checkpoint]] = {}  # trial id -> checkpoints before its latest
        self._latest: dict[str, Checkpoint] = {}

    def on_checkpoint(self, iteration: int, trials: list[Trial], trial: Trial, checkpoint: Checkpoint, **info):
        previous = self._latest.get(trial.trial_id)
        if previous is not None:
            self._older.setdefault(trial.trial_id, []).append(previous)
        self._latest[trial.trial_id] = checkpoint

    def get_state(self) -> None:
        for checkpoints in self._older.values():
            for checkpoint in checkpoints:
                _delete(checkpoint)
        self._older.clear()
        return None  # nothing to restore: a resumed sweep starts tracking its trials' new checkpoints


def _delete(checkpoint: Checkpoint) -> None:
    try:
        checkpoint.filesystem.delete_dir(checkpoint.path)
    except FileNotFoundError:
        pass  # gone already (a trial folder removed by hand): nothing to free
