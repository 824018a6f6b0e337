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
