"""Sweeps: fan a (model x strategy x compression x seed) grid of trials out with Ray Tune.

The only subpackage that imports Ray. ``load_spec`` reads and validates a sweep file,
``run_sweep`` runs it on a local Ray or an attached cluster, ``run_on_cluster`` submits it as a
Ray Job to a cluster made by Ray's cluster launcher.
"""

import os

# Set before Ray is first imported, which reads them once:
# - Ray clusters of 2.60 require their shared token; clients must be told to send it
#   (RAY_AUTH_MODE=disabled opts out, for clusters started without authentication);
# - Tune's legacy console output is silent at verbose=0 (the newer one always prints a banner),
#   and shrink prints its own progress;
# - Tune's warning about slow experiment-state snapshots repeats on every snapshot.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

from shrink.orchestrator.cluster import ClusterError, check_cluster_file, run_on_cluster
from shrink.orchestrator.spec import SpecError, SweepSpec, load_spec, local_resources, parse_spec, presets
from shrink.orchestrator.sweep import Plan, SweepOutcome, check_local, run_sweep

__all__ = [
    "ClusterError",
    "Plan",
    "SpecError",
    "SweepOutcome",
    "SweepSpec",
    "check_cluster_file",
    "check_local",
    "load_spec",
    "local_resources",
    "parse_spec",
    "presets",
    "run_on_cluster",
    "run_sweep",
]
