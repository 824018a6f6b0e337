"""Sweeps: fan a (model x strategy x compression x seed) grid of trials out with Ray Tune.

The only subpackage that imports Ray. ``load_spec`` reads and validates a sweep file,
``run_sweep`` runs it on a local Ray or an attached cluster, ``run_on_cluster`` submits it as a
Ray Job to a cluster made by Ray's cluster launcher; ``launch_sweep`` and ``launch_trial`` choose among
these for the command line. The names below are imported on first use, so ``shrink trial`` in one
process never imports Ray.
"""

import importlib
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

_EXPORTS = {
    "ClusterError": "cluster", "check_cluster_file": "cluster", "run_on_cluster": "cluster",
    "SweepRequest": "launch", "launch_sweep": "launch", "launch_trial": "launch",
    "SpecError": "spec", "SweepSpec": "spec", "load_spec": "spec", "local_resources": "spec",
    "parse_spec": "spec", "presets": "spec",
    "Plan": "sweep", "SweepOutcome": "sweep", "check_local": "sweep", "check_tracking": "sweep", "run_sweep": "sweep",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
