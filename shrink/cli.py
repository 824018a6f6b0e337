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
