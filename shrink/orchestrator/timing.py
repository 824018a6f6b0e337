"""A sweep's timing phase: every trial's measured speedup taken where nothing else runs.

Trials of a sweep share their machine (two on two cores, four on one GPU with ``gpus: 0.25``), so a trial
does not time its dense/pruned pair: it saves it under ``<sweep storage>/latency/<host>/`` and ends
(``shrink.experiment.latency``). Once every trial of the sweep has ended, :func:`time_saved_pairs` runs
one Ray task per host that holds saved pairs, placed on a node of that host with one trial's resources,
and the task times that host's pairs one after another; hosts time in parallel, since they share nothing.
A pair is deleted once its figures are logged, so a sweep stopped in this phase times the rest on
``--resume``.
"""

import socket
from collections.abc import Callable
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from shrink.experiment.errors import RecordingError
from shrink.orchestrator.spec import Resources

LATENCY = "latency"  # in the sweep's storage folder: one folder of saved pairs per host


def time_saved_pairs(storage: Path, resources: Resources, say: Callable[[str], None]) -> int:
    """Time every pair saved under ``storage``/latency, one at a time per host; the number timed."""
    from shrink.experiment import latency

    root = storage / LATENCY
    counts = {folder.name: len(latency.saved_pairs(folder)) for folder in sorted(root.iterdir())} if root.is_dir() else {}
    hosts = {host: count for host, count in counts.items() if count}
    if not hosts:
        return 0
    say(f"latency: timing {sum(hosts.values())} trials' dense and pruned models now that no trial runs, "
        f"one at a time on each of {len(hosts)} machine(s): {', '.join(hosts)}")
    nodes = _node_of_each_host()
    task = ray.remote(_time_host)
    refs = [task.options(name="shrink-latency", num_cpus=resources.cpus, num_gpus=resources.gpus,
                         scheduling_strategy=_on(nodes.get(host))).remote(str(root / host)) for host in hosts]
    try:
        return sum(ray.get(refs))
    except RecordingError as error:  # Ray's error from the task, a RecordingError too, carries the task's traceback
        raise RecordingError(f"{error.cause}; once the store answers, `shrink sweep ... --resume` times the trials "
                             "left") from None


def _node_of_each_host() -> dict[str, str]:
    """A live Ray node id per host name (several nodes on one host: any of them)."""
    return {node["NodeManagerHostname"]: node["NodeID"] for node in ray.nodes() if node["Alive"]}


def _on(node_id: str | None):
    # soft: a host whose node has gone times elsewhere (the run records the device it was timed on)
    return NodeAffinitySchedulingStrategy(node_id, soft=True) if node_id else "DEFAULT"


def _time_host(folder: str) -> int:
    """In the task: time this host's saved pairs in turn, logging each to its trial's run."""
    from shrink.experiment import latency

    pairs = latency.saved_pairs(Path(folder))
    if Path(folder).name != socket.gethostname():
        print(f"latency: {folder}'s host is not in the cluster any more; timing its pairs on {socket.gethostname()}")
    for path in pairs:
        latency.time_saved_pair(path)
    return len(pairs)
