"""The exceptions a trial raises, so callers (the CLI, the orchestrator) can tell failures apart."""


class ConfigError(ValueError):
    """A trial or pretraining configuration is invalid (raised before any expensive work). ``key`` names
    the trial config field at fault (``compression``, ``finetune.batch_size``, ...) when there is one, so
    that a sweep file can say which of its keys to fix."""

    def __init__(self, message: str, *, key: str | None = None):
        super().__init__(message)
        self.key = key


class TrialDiverged(Exception):
    """The training loss became NaN or infinite; the trial's run is recorded as failed first."""


class CheckpointMismatch(Exception):
    """A checkpoint is not the one expected: wrong hash, wrong model, or another trial's state."""


class MaskDrift(RuntimeError):
    """Pruned weights are no longer exactly zero, or the masks changed, after fine-tuning."""


class RecordingError(RuntimeError):
    """Writing to the MLflow tracking store failed; names the tracking URI and the cause."""
