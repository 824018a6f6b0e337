"""`shrink list models`."""

from click.testing import CliRunner

from shrink.cli import main


def test_list_models_prints_counts_shapes_and_papers():
    result = CliRunner().invoke(main, ["list", "models"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert lines["resnet56"].split()[:4] == ["resnet56", "853,018", "3x32x32", "10"]
    assert lines["small-mlp"].split()[:4] == ["small-mlp", "79,510", "1x28x28", "10"]
    assert lines["resnet18"].split()[:4] == ["resnet18", "11,689,512", "3x224x224", "1000"]
    assert "Zagoruyko 2015" in lines["cifar-vgg"]
