"""One trial: pretrain a base once, prune it, fine-tune with early stopping, evaluate, record in MLflow."""

from shrink.experiment.checkpoint import Checkpointer, DirectoryCheckpointer
from shrink.experiment.config import PRESETS, FinetuneConfig, TrialConfig
from shrink.experiment.errors import CheckpointMismatch, ConfigError, MaskDrift, RecordingError, TrialDiverged
from shrink.experiment.bases import BaseCheckpoint, cache_root, load_base, pretrain
from shrink.experiment.recipes import RECIPES, Recipe
from shrink.experiment.tracking import DEFAULT_EXPERIMENT, ensure_experiment, resolve_tracking_uri
from shrink.experiment.trial import run_trial

__all__ = [
    "BaseCheckpoint", "CheckpointMismatch", "Checkpointer", "ConfigError", "DEFAULT_EXPERIMENT",
    "DirectoryCheckpointer", "FinetuneConfig", "MaskDrift", "PRESETS", "RECIPES", "Recipe", "RecordingError",
    "TrialConfig", "TrialDiverged", "cache_root", "ensure_experiment", "load_base", "pretrain",
    "resolve_tracking_uri", "run_trial",
]
