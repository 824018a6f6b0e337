"""torchvision (and scikit-learn) stay unimported until an ImageNet model or image decoding needs them."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys
from shrink import datasets, models
models.create("resnet20"); models.create("small-cnn", input_shape=(1, 8, 8)); models.available()
datasets.load("digits", "train"); datasets.available()
print(sorted(m for m in ("torch", "torchvision", "sklearn") if m in sys.modules))
"""


def test_small_models_and_datasets_do_not_import_torchvision():
    out = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["['torch']"]
