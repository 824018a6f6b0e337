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
    _echo_table(("NAME", "ALIASES", "NEEDS DATA", "DESCRIPTION"), rows)


def _echo_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Print rows as left-aligned columns separated by two spaces."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
