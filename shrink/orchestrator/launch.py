"""How things run, decided in one place: the command line describes what it was asked and calls
:func:`launch_sweep` or :func:`launch_trial`, which pick the way (a dry run, an embedded Ray, a running
cluster at an address, a Ray Job on a ``ray up`` cluster; one process or Ray Train workers).

Ray is imported only on the paths that need it, so ``shrink trial`` in one process starts without it.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from shrink.experiment import BaseCheckpoint, DirectoryCheckpointer, TrialConfig, run_trial
from shrink.experiment.tracking import probe_tracking, resolve_tracking_uri
from shrink.orchestrator.spec import SpecError, SweepSpec, load_spec


@dataclass(frozen=True)
class SweepRequest:
    """What ``shrink sweep`` was asked to do (its arguments and options)."""

    spec_file: Path | None = None  # a sweep file; None: ``preset``, else the demo
    preset: str | None = None
    dry_run: bool = False  # check and describe, start nothing
    resume: bool = False
    address: str | None = None  # a running Ray cluster's head (``auto``: this node's)
    cluster_file: Path | None = None  # a ``ray up`` file: run as a Ray Job there
    tracking_uri: str | None = None  # overrides the sweep file's
    storage_path: str | None = None  # overrides the sweep file's

    def spec(self) -> SweepSpec:
        """The sweep file (or preset) read and checked, with this request's overrides."""
        spec = load_spec(self.spec_file, preset=self.preset)
        overrides = {"tracking_uri": self.tracking_uri, "storage_path": self.storage_path}
        return replace(spec, **{k: v for k, v in overrides.items() if v is not None})

    def cluster_args(self) -> list[str]:
        """The ``shrink sweep`` arguments of the cluster job (the sweep file relative to the working
        directory, which is what the job gets)."""
        args = []
        if self.spec_file is not None:
            try:
                args.append(str(self.spec_file.resolve().relative_to(Path.cwd())))
            except ValueError:
                raise SpecError(f"{self.spec_file} is outside the working directory, which is what the cluster "
                                "job gets") from None
        if self.preset:
            args += ["--preset", self.preset]
        if self.resume:
            args.append("--resume")
        if self.tracking_uri:
            args += ["--tracking-uri", self.tracking_uri]
        if self.storage_path:
            args += ["--storage-path", self.storage_path]
        return args


def launch_sweep(request: SweepRequest, *, echo: Callable[[str], None] = print) -> int:
    """Do what ``request`` asks and return the exit status (0: every trial ran to an end). Raises
    ``SpecError`` before anything starts when the request or the sweep cannot run (the CLI exits 2), and
    ``ClusterError`` when a cluster cannot be brought up or reached."""
    from shrink import orchestrator

    if request.cluster_file and request.address:
        raise SpecError("--cluster and --address exclude each other: --cluster submits with --address auto")
    if request.cluster_file:  # refused before anything starts when it opens the head to the world
        orchestrator.check_cluster_file(request.cluster_file)
    spec = request.spec()
    if request.cluster_file:  # where it runs, and where results go, are the cluster's to say
        if request.dry_run:
            echo(spec.describe())
            return 0
        return orchestrator.run_on_cluster(request.cluster_file, request.cluster_args(), working_dir=Path.cwd(),
                                           pip=spec.pip.runtime_env())
    if request.dry_run:
        plan = orchestrator.Plan.of(spec)
        if request.address is None:
            orchestrator.check_local(plan, resume=request.resume)
        else:
            orchestrator.check_tracking(plan)
        echo(plan.describe(orchestrator.local_resources() if request.address is None else None))
        return 0
    outcome = orchestrator.run_sweep(spec, address=request.address, resume=request.resume)
    echo(outcome.summary())
    return 0 if outcome.ok else 1


def launch_trial(values: dict, *, checkpoint_dir: str | None = None,
                 reporter: Callable[[int, dict], None] | None = None) -> dict:
    """``shrink trial``: the trial ``values`` describe (``TrialConfig.from_dict``; a ``base`` that is a base
    checkpoint shrink wrote is taken by path), in this process, or on ``workers`` Ray Train workers of a
    Ray started here. ``checkpoint_dir`` holds its state after every epoch and resumes it, either way.
    Returns the final metrics."""
    values = dict(values)
    if "base" in values and BaseCheckpoint.is_checkpoint(values["base"]):
        values["base_path"] = values.pop("base")
    config = TrialConfig.from_dict(values)
    probe_tracking(resolve_tracking_uri(config.tracking_uri), config.experiment_name)
    if config.workers > 1:
        from shrink.orchestrator.ray_train import run_data_parallel_trial

        return run_data_parallel_trial(config, checkpoint_dir=checkpoint_dir)
    checkpointer = DirectoryCheckpointer(checkpoint_dir) if checkpoint_dir else None
    return run_trial(config, checkpointer=checkpointer, reporter=reporter)
