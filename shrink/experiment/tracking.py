"""Where results are recorded: one rule for the MLflow tracking URI, shared by every command."""

import os
from pathlib import Path

DEFAULT_EXPERIMENT = "shrink"
# MLflow 3's UI opens an experiment without this tag in its GenAI view (traces, "Evaluations"); with it,
# the model-training view (runs table, metrics).
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
_REPLACED_KINDS = ("", "genai_development", "genai_development_inferred", "custom_model_development_inferred",
                   "no_inferred_type")


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``uri`` if given, else ``$MLFLOW_TRACKING_URI``, else a local
    sqlite store ``mlflow.db`` in the working directory (MLflow's own default, made absolute so
    that Ray workers, which run elsewhere, write to the same file)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def ensure_experiment(uri: str, name: str = DEFAULT_EXPERIMENT) -> str:
    """Create the store and the experiment once, in the calling process, and return its id.

    The experiment is tagged as model training (:data:`EXPERIMENT_KIND`), created or found; a found one
    keeps a kind someone chose unless it is a GenAI or inferred one. Call this in the driver before
    trials start: trials that create a fresh sqlite store concurrently race on its schema migration and
    corrupt it.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    if experiment.tags.get(EXPERIMENT_KIND_TAG, "") in _REPLACED_KINDS:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id
