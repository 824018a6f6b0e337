"""The ``shrink`` command line: a thin layer that parses options and calls the library."""

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


# --- shrink report, shrink check, shrink ui (shrink.report) ---

SWEEP_ARGUMENT = click.argument("sweep", required=False)
TRACKING_URI_OPTION = click.option(
    "--tracking-uri", metavar="URI",
    help="MLflow tracking store [default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db].",
)


@main.command("report")
@SWEEP_ARGUMENT
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Output directory [default: shrink-out/report/<sweep>].")
@click.option("--literature", is_flag=True,
              help="Overlay published results (Blalock et al. 2020) on matching figures.")
@TRACKING_URI_OPTION
def report(sweep, out_dir, literature, tracking_uri):
    """Tables, figures, report.md and the checklist of SWEEP (default: the newest sweep)."""
    from shrink.report import SweepNotFound, build_report, format_checklist

    try:
        result = build_report(sweep, tracking_uri=tracking_uri, out_dir=out_dir,
                              literature=literature, log=click.echo)
    except SweepNotFound as e:
        raise click.ClickException(str(e)) from e
    click.echo(format_checklist(result.checks))
    click.echo(f"report: {result.out_dir / 'report.md'}")


@main.command("check")
@SWEEP_ARGUMENT
@click.option("--strict", is_flag=True, help="Exit with status 1 when any item fails.")
@TRACKING_URI_OPTION
def check(sweep, strict, tracking_uri):
    """Audit SWEEP (default: the newest) against the paper's Appendix B checklist."""
    from shrink.report import SweepNotFound, check_sweep, format_checklist

    try:
        _, items = check_sweep(sweep, tracking_uri=tracking_uri, log=click.echo)
    except SweepNotFound as e:
        raise click.ClickException(str(e)) from e
    click.echo(format_checklist(items))
    failed = sum(not item.passed for item in items)
    if strict and failed:
        click.echo(f"{failed} of {len(items)} checklist items failed", err=True)
        raise SystemExit(1)


@main.command("ui")
@SWEEP_ARGUMENT
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; any other than 127.0.0.1 exposes the UI beyond this machine.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@TRACKING_URI_OPTION
def ui(sweep, host, port, tracking_uri):
    """Start the MLflow UI on the sweep's tracking store and print its URL (SWEEP: the run to link)."""
    from shrink.experiment.tracking import resolve_tracking_uri
    from shrink.report import SweepNotFound
    from shrink.report.ui import serve

    try:
        serve(resolve_tracking_uri(tracking_uri), host, port, sweep, echo=click.echo)
    except SweepNotFound as e:
        raise click.ClickException(str(e)) from e
