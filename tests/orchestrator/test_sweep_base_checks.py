"""`base:` in sweep files: every bad value is one line at --dry-run time, exit 2, nothing started."""

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from helpers import RESNET18_FILE, fake_published_weights, write_imagenet
from shrink import models
from shrink.cli import main
from shrink.orchestrator import parse_spec
from shrink.orchestrator.spec import BaseKey

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("offline")


def sweep_file(folder: Path, data_root: Path, base: str, models_: str = "[resnet18]") -> Path:
    path = folder / "s.yaml"
    path.write_text("\n".join([
        "dataset: imagenet", f"data_root: {data_root}", f"models: {models_}", f"base: {base}",
        "strategies: [global-magnitude]", "compressions: [2]", "seeds: [0]",
        f"tracking_uri: sqlite:///{folder / 'mlflow.db'}", f"storage_path: {folder / 'ray'}",
    ]) + "\n")
    return path


def dry_run(path: Path):
    result = CliRunner().invoke(main, ["sweep", str(path), "--dry-run"])
    return result.exit_code, result.output.strip()


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    return write_imagenet(tmp_path_factory.mktemp("three") / "imagenet", classes=3, full=3)


@pytest.mark.parametrize(("base", "models_", "message"), [
    ("nonsense.pt", "[resnet18]", r"s.yaml: base: '/.*/nonsense.pt' is neither 'pretrain', nor "
                                  r"torchvision\[:<WEIGHTS>\], nor an existing state-dict file"),
    ("torchvision", "[resnet18, resnet20]", "s.yaml: base torchvision: resnet20 has no published torchvision "
                                            "weights; the models that have them: alexnet"),
    ("torchvision:IMAGENET1K_V9", "[resnet18]", "s.yaml: base torchvision:IMAGENET1K_V9: torchvision has no weights "
                                                "'IMAGENET1K_V9' for resnet18; it has: DEFAULT, IMAGENET1K_V1"),
    ("{resnet34: torchvision}", "[resnet18]", r"s.yaml: base: 'resnet34' is not one of the sweep's models \(resnet18\)"),
])
def test_values_that_name_no_base_fail_at_dry_run(tmp_path, torch_home, three_classes, base, models_, message):
    code, output = dry_run(sweep_file(tmp_path, three_classes, base, models_))
    assert code == 2
    assert re.fullmatch(f"Error: {message}.*", output), output
    assert "\n" not in output


def test_published_weights_for_another_class_count_name_both(tmp_path, torch_home, three_classes):
    fake_published_weights(torch_home)
    code, output = dry_run(sweep_file(tmp_path, three_classes, "torchvision:IMAGENET1K_V1"))
    assert (code, output) == (2, f"Error: base torchvision:IMAGENET1K_V1: resnet18 IMAGENET1K_V1 has 1000 outputs "
                                 f"but imagenet at {three_classes} has 3 classes")


def test_missing_published_weights_name_the_file_and_where_to_put_it(tmp_path, torch_home):
    tree = write_imagenet(tmp_path / "imagenet")
    code, output = dry_run(sweep_file(tmp_path, tree, "torchvision:IMAGENET1K_V1"))
    assert code == 2
    assert output.startswith(f"Error: torchvision weights resnet18 IMAGENET1K_V1 are not in "
                             f"{torch_home / RESNET18_FILE} and downloads are disabled")
    assert "\n" not in output

    fake_published_weights(torch_home)
    code, output = dry_run(sweep_file(tmp_path, tree, "torchvision:IMAGENET1K_V1"))
    assert code == 0, output
    assert "bases: resnet18 torchvision:IMAGENET1K_V1\n" in output


def test_a_file_for_another_architecture_names_the_mismatched_keys(tmp_path, torch_home, three_classes):
    path = tmp_path / "mobilenet.pt"
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in models.create("mobilenet_v2", 3).state_dict().items()}
    torch.save({k: torch.zeros(shape) for k, shape in shapes.items()}, path)
    code, output = dry_run(sweep_file(tmp_path, three_classes, str(path)))
    assert code == 2
    assert output.startswith(f"Error: base {path}: weights file file:{path} does not fit resnet18: missing conv1.weight; "
                             "missing bn1.weight; missing bn1.bias; and ")
    assert output.endswith("more (imagenet has 3 classes)")


def test_the_readme_imagenet_sweep_is_a_valid_sweep_file():
    readme = (ROOT / "README.md").read_text()
    text = re.search(r"cat > imagenet.yaml <<'YAML'\n(.*?)YAML\n", readme, re.S).group(1)
    spec = parse_spec(text, origin="imagenet.yaml")
    assert (spec.size, dict(spec.base_setting().source), spec.bases()) == (
        78, {"resnet18": "torchvision:IMAGENET1K_V1"}, [BaseKey("resnet18", None)])
    preset = (ROOT / "shrink" / "orchestrator" / "presets" / "imagenet-resnet18.yaml").read_text()
    assert "base: torchvision:IMAGENET1K_V1\n" in preset
