"""``shrink doctor --address`` and the GPU preflight of a sweep: ``probe_node`` as one Ray task per node.

Each task is pinned to its node (``NodeAffinitySchedulingStrategy``, not soft) and holds no resource, so
it runs beside trials on a busy cluster; it sees every GPU of its node because Ray leaves
``CUDA_VISIBLE_DEVICES`` alone for a task without GPUs (``RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=0``, set for
the task in case the cluster sets it otherwise). Holding the GPUs instead would wait for every running
trial to end. A node whose task does not end within ``TIMEOUT_S`` (a worker that cannot start) is
reported as such.
"""

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from shrink.experiment.node import NodeCheck, NodeReport, node_problems, probe_node
from shrink.orchestrator.spec import SpecError, SweepSpec

TIMEOUT_S = 120.0
SEES_ALL_GPUS = {"env_vars": {"RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}}


def probe_nodes(*, gpu_nodes_only: bool = False, decodes_jpeg: bool = True,
                timeout_s: float = TIMEOUT_S) -> list[NodeCheck]:
    """Probe every alive node of the connected Ray cluster (with ``gpu_nodes_only``, those with GPUs) and
    judge each, as a GPU node where Ray counts GPUs."""
    nodes = [node for node in ray.nodes() if node["Alive"]]
    if gpu_nodes_only:
        nodes = [node for node in nodes if node["Resources"].get("GPU", 0)]
    probe = ray.remote(max_calls=1)(_probe)  # its worker exits after it, freeing its CUDA contexts
    pending = {}
    for node in nodes:
        gpus = node["Resources"].get("GPU", 0.0)
        name = f"{node['NodeManagerAddress']} ({node['NodeID'][:8]})"
        affinity = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        task = probe.options(num_cpus=0, scheduling_strategy=affinity, runtime_env=SEES_ALL_GPUS).remote(name, gpus)
        pending[task] = name
    if not pending:
        return []
    done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
    checks = []
    for task, name in pending.items():
        if task not in done:
            checks.append(NodeCheck(name, None, (f"the probe did not end within {timeout_s:g} s: its Ray worker "
                                                 "cannot start there (see the node's raylet log)",)))
            continue
        try:
            report = ray.get(task)
        except ray.exceptions.RayError as error:
            lines = [line for line in str(error).splitlines() if line.strip()]
            checks.append(NodeCheck(name, None, (f"the probe failed: {lines[-1] if lines else error}",)))
            continue
        problems = node_problems(report, needs_gpu=bool(report.ray_gpus), decodes_jpeg=decodes_jpeg)
        checks.append(NodeCheck(name, report, tuple(problems)))
    return checks


def check_gpu_nodes(spec: SweepSpec) -> None:
    """The GPU preflight of a sweep on the connected Ray: raise :class:`SpecError` (one line naming the node
    and the reason) unless every node with GPUs can train there; JPEG decoding counts for ImageNet-family
    datasets only."""
    from shrink import datasets

    decodes_jpeg = datasets.info(spec.dataset).family == "imagenet"
    failing = [check for check in probe_nodes(gpu_nodes_only=True, decodes_jpeg=decodes_jpeg) if check.problems]
    if failing:
        first = failing[0]
        more = sum(len(check.problems) for check in failing) - 1
        rest = f" ({more} more problem{'s' if more != 1 else ''}: `shrink doctor` lists them)" if more else ""
        raise SpecError(f"GPU preflight: node {first.name}: {first.problems[0]}{rest}")


def _probe(name: str, gpus: float) -> NodeReport:
    return probe_node(name=name, ray_gpus=gpus)


def doctor_cluster(address: str) -> list[NodeCheck]:
    """``shrink doctor --address``: attach to the cluster at ``address``, probe every node, detach."""
    from shrink.orchestrator.sweep import check_address, quiet

    check_address(address)
    ray.init(address=address, **quiet())
    try:
        return probe_nodes()
    finally:
        ray.shutdown()
