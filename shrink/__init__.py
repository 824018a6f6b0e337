"""shrink: standardized evaluation of neural-network pruning.

Subpackages, with dependencies pointing one way (cli -> orchestrator -> experiment -> the rest):

- ``shrink.pruning``: masks, scores, strategies, schedules (never imports Ray or MLflow)
- ``shrink.metrics``: model size, multiply-adds, accuracy, per-layer tables
- ``shrink.models``: the named model zoo
- ``shrink.datasets``: the named datasets, splits and fast tensor loaders
- ``shrink.experiment``: one trial (pretrain, prune, fine-tune, evaluate, record)
- ``shrink.orchestrator``: sweeps with Ray Tune and MLflow
- ``shrink.report``: aggregation, plots and the paper's checklist
"""

__version__ = "0.1.0"

import os

# MLflow 3.17's usage telemetry fetches its settings in a thread started at import. Where that fails
# (no internet, as on many clusters) the thread deletes an environment variable while an HTTP request
# to a tracking server iterates os.environ, and the request fails with
# KeyError('_MLFLOW_TELEMETRY_SESSION_ID') (seen here: a sweep's first runs/create). Off unless the
# user sets MLFLOW_DISABLE_TELEMETRY=false.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
