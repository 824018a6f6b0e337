"""`shrink list datasets`."""

from click.testing import CliRunner
from helpers import position_coded_mnist, write_mnist

from shrink.cli import main


def test_list_datasets_shows_where_files_are_and_what_is_missing(tmp_path):
    write_mnist(tmp_path / "mnist", *position_coded_mnist(100, 20))
    result = CliRunner().invoke(main, ["list", "datasets", "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.output.splitlines()[1:] if line}
    assert lines["mnist"][:5] == ["mnist", "1x28x28", "10", "mnist", str(tmp_path / "mnist")]
    assert lines["cifar10"][:5] == ["cifar10", "3x32x32", "10", "cifar", "missing"]
    assert "random 32x32 crop of the 4-pixel zero-padded image" in " ".join(lines["cifar100"])
    assert "shrink list datasets -v says where shrink looked" in result.output


def test_verbose_says_where_shrink_looked(tmp_path):
    result = CliRunner().invoke(main, ["list", "datasets", "-v", "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"cifar100 not found in {tmp_path}, {tmp_path / 'cifar100'}, " in result.output
