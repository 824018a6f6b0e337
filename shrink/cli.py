"""The ``shrink`` command line: a thin layer that parses options and calls the library."""

from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shrink")
def main() -> None:
    """shrink: standardized evaluation of neural-network pruning.

    \b
    Typical flow:
      shrink pretrain --model resnet20 --dataset cifar10   # train the shared base once
      shrink sweep sweep.yaml                              # fan trials out with Ray Tune
      shrink report                                        # tables, plots, checklist
    """


@main.group("list")
def list_() -> None:
    """List what shrink knows: strategies, models, datasets."""


@list_.command("models")
def list_models() -> None:
    """Models of the zoo: name, parameters, input shape (C, H, W), classes, source paper."""
    from shrink import models

    click.echo(f"{'name':<14} {'params':>12}  {'input':<12} {'classes':>7}  paper")
    for model in models.available():
        shape = "x".join(map(str, model.input_shape))
        params = models.parameter_count(model.name)
        click.echo(f"{model.name:<14} {params:>12,}  {shape:<12} {model.num_classes:>7}  {model.paper}")


@list_.command("datasets")
@click.option("--data-root", type=click.Path(file_okay=False), help="Also look for the files here.")
@click.option("-v", "--verbose", is_flag=True, help="Say where shrink looked for missing datasets and how to provide them.")
def list_datasets(data_root: str | None, verbose: bool) -> None:
    """Datasets: name, input shape (C, H, W), classes, family, where the files are, training augmentation."""
    from shrink import datasets

    click.echo(f"{'name':<14} {'input':<10} {'classes':>7}  {'family':<9} {'files':<40} augmentation")
    missing = []
    for dataset in datasets.available():
        shape = "x".join(map(str, dataset.input_shape))
        try:
            where = str(datasets.locate(dataset.name, data_root))
        except datasets.DatasetNotFound as err:
            where = "missing"
            missing.append(str(err))
        row = f"{dataset.name:<14} {shape:<10} {dataset.num_classes:>7}  {dataset.family:<9} {where:<40}"
        click.echo(f"{row} {dataset.augmentation}")
    if missing and verbose:
        click.echo("\n" + "\n".join(missing))
    elif missing:
        click.echo(f"\n{len(missing)} missing: shrink list datasets -v says where shrink looked and how to provide them")


@list_.command("strategies")
def list_strategies() -> None:
    """Pruning strategies: name, ShrinkBench aliases, whether they need data, description."""
    from shrink.pruning import strategies
    from shrink.pruning.registry import MATCHED

    try:
        registered = strategies()
    except ImportError as error:
        raise click.ClickException(str(error)) from error
    rows = [
        (s.name, ", ".join(s.aliases) or "-", "yes" if s.needs_data else "no", s.description)
        for s in registered.values()
    ]
    rows += [(f"{family}:<strategy>", "-", "as <strategy>", text) for family, (_, text) in MATCHED.items()]
    _echo_table(("name", "aliases", "needs data", "description"), rows)


def _echo_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Print rows as left-aligned columns separated by two spaces."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@main.command()
@click.argument("spec_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--preset", metavar="NAME",
              help="A built-in sweep: demo (the default), cifar10-resnet56, imagenet-resnet18.")
@click.option("--dry-run", is_flag=True, help="Check the sweep, print its trial grid and resources, and exit.")
@click.option("--resume", is_flag=True, help="Continue an interrupted sweep without rerunning finished trials.")
@click.option("--address", metavar="HOST:PORT",
              help="Attach to a running Ray cluster ('auto': the one on this node) instead of starting Ray here.")
@click.option("--cluster", "cluster_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run as a Ray Job on the cluster this `ray up` file describes (brought up if needed).")
@click.option("--tracking-uri", metavar="URI",
              help="MLflow tracking URI (default: the sweep file's, else $MLFLOW_TRACKING_URI, else ./mlflow.db).")
@click.option("--storage-path", metavar="DIR",
              help="Where Ray Tune keeps sweep state, on a cluster a folder all nodes share "
                   "(default: the sweep file's, else $SHRINK_STORAGE, else ./shrink-out/ray).")
def sweep(spec_file, preset, dry_run, resume, address, cluster_file, tracking_uri, storage_path):
    """Fan a grid of pruning trials out with Ray Tune (default: the built-in demo sweep).

    SPEC_FILE is a YAML sweep file (see shrink/orchestrator/spec.py). Trials are recorded in MLflow
    under one parent run per sweep; `shrink report` summarises them.
    """
    from dataclasses import replace

    from shrink import orchestrator

    if cluster_file and address:
        raise click.UsageError("--cluster and --address exclude each other: --cluster submits with --address auto")
    try:
        spec = orchestrator.load_spec(spec_file, preset=preset)
        overrides = {"tracking_uri": tracking_uri, "storage_path": storage_path}
        spec = replace(spec, **{k: v for k, v in overrides.items() if v is not None})
        if cluster_file:  # where it runs, and where results go, are the cluster's to say
            if dry_run:
                click.echo(spec.describe())
                return
            args = _sweep_args(spec_file, preset, resume=resume, tracking_uri=tracking_uri, storage_path=storage_path)
            raise SystemExit(orchestrator.run_on_cluster(cluster_file, args, working_dir=Path.cwd()))
        if dry_run:
            plan = orchestrator.Plan.of(spec)
            if address is None:
                orchestrator.check_local(plan, resume=resume)
            click.echo(plan.describe(orchestrator.local_resources() if address is None else None))
            return
        outcome = orchestrator.run_sweep(spec, address=address, resume=resume)
    except orchestrator.SpecError as error:
        failure = click.ClickException(str(error))
        failure.exit_code = 2
        raise failure from None
    except orchestrator.ClusterError as error:
        raise click.ClickException(str(error)) from None
    click.echo(outcome.summary())
    if not outcome.ok:
        raise SystemExit(1)


def _sweep_args(spec_file, preset, *, resume, tracking_uri, storage_path) -> list[str]:
    """The `shrink sweep` arguments a cluster job gets (the sweep file relative to the working directory)."""
    args = []
    if spec_file is not None:
        try:
            args.append(str(spec_file.resolve().relative_to(Path.cwd())))
        except ValueError:
            raise click.UsageError(
                f"{spec_file} is outside the working directory, which is what the cluster job gets"
            ) from None
    if preset:
        args += ["--preset", preset]
    if resume:
        args.append("--resume")
    if tracking_uri:
        args += ["--tracking-uri", tracking_uri]
    if storage_path:
        args += ["--storage-path", storage_path]
    return args
