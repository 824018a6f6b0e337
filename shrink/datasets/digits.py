"""scikit-learn's bundled 8x8 handwritten digits (a copy of the UCI optical-recognition test set), for fast tests.

Read from ``digits.csv.gz`` in scikit-learn's package data (the optional extra ``shrink[digits]``), or
from that file placed in ``$SHRINK_DATA/digits`` or a given root: 1,797 images of 8x8 pixels with values
0..16 (rescaled to 0..255 as ``round(v * 255 / 16)``, which keeps them distinct), 10 classes, in 65
comma-separated columns per row (64 pixels, then the label).

There is no official test split: a stratified 20% (359 images) carved with ``TEST_SEED`` is the test
set, and the train/validation carve-out is taken from the other 1,438. Normalization constants are the
pixel mean and standard deviation of those 1,438 images. No training augmentation.
"""

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from shrink.datasets.base import DatasetFormatError, DatasetInfo
from shrink.datasets.carve import stratified
from shrink.datasets.source import ArraySource

FILE = "digits.csv.gz"
TEST_FRACTION = 0.2
TEST_SEED = 1998
"""Seed of the fixed test carve-out; changing it would change what every digits result means."""


def _sklearn_data_dirs() -> tuple[Path, ...]:
    spec = importlib.util.find_spec("sklearn")
    return tuple(Path(location) / "datasets" / "data" for location in spec.submodule_search_locations) if spec else ()


class DigitsSource(ArraySource):
    """The digits CSV, split into a fixed test set and a training pool."""

    def find(self, directory: Path) -> Path | None:
        return directory if (directory / FILE).is_file() else None

    def read(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        try:
            with gzip.open(path / FILE, "rt") as f:
                table = np.loadtxt(f, delimiter=",")
        except (OSError, EOFError, ValueError) as err:
            raise DatasetFormatError(f"cannot read {path / FILE} as a digits CSV: {err}") from None
        if table.ndim != 2 or table.shape[1] != 65:
            raise DatasetFormatError(
                f"{path / FILE} has shape {table.shape}, expected 65 columns (64 pixels and a label)"
            )
        images = np.rint(table[:, :64] * 255 / 16).astype(np.uint8).reshape(-1, 1, 8, 8)
        labels = table[:, 64].astype(np.int64)
        pool, test = stratified(labels, TEST_FRACTION, TEST_SEED)
        return images[pool], labels[pool], images[test], labels[test]


DIGITS = DigitsSource(
    DatasetInfo(
        name="digits",
        input_shape=(1, 8, 8),
        num_classes=10,
        mean=(0.3054,),
        std=(0.3758,),
        family="digits",
        augmentation="none",
        source="UCI optical recognition of handwritten digits (Alpaydin & Kaynak 1998), as bundled by scikit-learn",
    ),
    needs=FILE,
    system_dirs=_sklearn_data_dirs(),
    provide="pip install 'shrink[digits]' (scikit-learn bundles the file)",
)
