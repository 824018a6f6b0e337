"""One trial: pretrain a base once, prune it, fine-tune with early stopping, evaluate, record in MLflow.

The names below are imported on first use, so that ``shrink.experiment.recording`` (the MLflow schema,
read by ``shrink report``) can be imported without torch.
"""

import importlib

_EXPORTS = {
    "Checkpointer": "checkpoint", "DirectoryCheckpointer": "checkpoint",
    "FINETUNE_PRESETS": "config", "FinetuneConfig": "config", "TrialConfig": "config",
    "CheckpointMismatch": "errors", "ConfigError": "errors", "MaskDrift": "errors", "RecordingError": "errors",
    "TrialDiverged": "errors",
    "BaseCheckpoint": "bases", "BaseRequest": "bases", "bases_dir": "bases", "load_base": "bases",
    "make_base": "bases", "pretrain": "bases", "resolve_base": "bases",
    "Ranks": "ranks",
    "RECIPES": "recipes", "Recipe": "recipes",
    "DEFAULT_EXPERIMENT": "tracking", "ensure_experiment": "tracking", "resolve_tracking_uri": "tracking",
    "run_trial": "trial",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
