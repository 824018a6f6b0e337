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
