"""A sweep's bases, made before its grid starts: each missing one as a Ray task holding one trial's
resources (a GPU on a GPU cluster), all of them at the same time, never in the driver.

The driver looks each base up in the cache (``$SHRINK_CACHE/bases``, shared by the nodes of a cluster)
and reads the weights of bases taken from torchvision or a file, which travel to the task through Ray's
object store (so only the driver's node needs them). A task pretrains or adopts its base under the
cache entry's file lock (``shrink.experiment.bases``): two sweeps that need the same base make it once,
the second waiting for the first and then using its result. A base is written whole or not at all,
so a driver killed during this phase leaves the finished bases in the cache for the next run.

Progress: the tasks' per-epoch lines reach the driver's output through Ray's log forwarding (prefixed
with the task's name and process), and the driver prints a line when each base is done.
"""

import time
from collections.abc import Callable

import ray

from shrink.experiment.bases import BaseCheckpoint, BaseRequest, find_base, make_base
from shrink.orchestrator.spec import SweepSpec


def make_bases(spec: SweepSpec, say: Callable[[str], None]) -> dict[tuple, BaseCheckpoint]:
    """The sweep's bases: cached ones as they are, missing ones made by concurrent Ray tasks.

    A task's failure (``ConfigError``, a diverged pretraining, ...) cancels the others and propagates.
    """
    bases, missing = {}, {}
    for key in spec.bases():
        request = spec.base_request(key)
        weights = request.weights()  # bytes of a torchvision or file base, read here (None: pretrain)
        found = find_base(request, weights)
        if found is None:
            missing[key] = (request, weights)
        else:
            say(f"base {request}: cached {found.path} (sha256 {found.sha256[:12]})")
            bases[key] = found
    if not missing:
        return bases
    resources = spec.resources
    say(f"bases: making {len(missing)} as Ray tasks at once, each with {resources.cpus:g} CPU and "
        f"{resources.gpus:g} GPU: {', '.join(str(request) for request, _ in missing.values())}")
    task = ray.remote(_make).options(num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=0,
                                     name="shrink-base")
    device = "cuda" if resources.gpus else "cpu"
    started = time.monotonic()
    pending = {
        task.remote(request, None if weights is None else ray.put(weights), device, max(1, int(resources.cpus))): key
        for key, (request, weights) in missing.items()
    }
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(done[0])
            base = ray.get(done[0])
            bases[key] = base
            say(f"base {missing[key][0]}: {base.path} (sha256 {base.sha256[:12]}) after "
                f"{time.monotonic() - started:.1f} s; {len(missing) - len(pending)}/{len(missing)} bases made")
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    return bases


def _make(request: BaseRequest, weights: bytes | None, device: str, threads: int) -> BaseCheckpoint:
    """Ray task: make one base (``weights`` arrive resolved from the object store)."""
    return make_base(request, weights, device=device, threads=threads, progress=_print)


def _print(line: str) -> None:
    print(line, flush=True)
