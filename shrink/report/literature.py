"""Published pruning results, for overlays on shrink's tradeoff figures.

The data are the results Blalock et al. (MLSys 2020) aggregated from 81 pruning papers, as
published with ShrinkBench (MIT license; ``data/LICENSE-shrinkbench-MIT``).
``data/literature.csv`` is :func:`clean_results` applied to the raw ``results.csv``; rebuild it
with ``python scripts/clean_literature.py ../shared/literature/results.csv``.

Cleaning keeps the rows whose (dataset, model) names one of shrink's datasets and models
exactly (``LeNet-5-Caffe`` is shrink's ``lenet-5``; the original ``LeNet-5`` and CIFAR
adaptations of ImageNet networks are different networks and are dropped), drops the
``Spec-*`` architecture variants of spectral-pruning, and drops placeholder rows without a
top-1 change or without a compression ratio and speedup. Accuracies become fractions.
"""

from importlib import resources

import pandas as pd

DATASETS = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100", "ImageNet": "imagenet", "MNIST": "mnist"}
MODELS = {
    **{("CIFAR-10", f"ResNet-{d}"): f"resnet{d}" for d in (20, 32, 44, 56, 110)},
    **{("CIFAR-100", f"ResNet-{d}"): f"resnet{d}" for d in (20, 32, 44, 56, 110)},
    ("CIFAR-10", "VGG-Torch-CIFAR10"): "cifar-vgg",
    ("CIFAR-100", "VGG-Torch-CIFAR10"): "cifar-vgg",
    **{("ImageNet", f"ResNet-{d}"): f"resnet{d}" for d in (18, 34, 50, 101, 152)},
    ("ImageNet", "VGG-16"): "vgg16",
    ("ImageNet", "VGG-19"): "vgg19",
    ("ImageNet", "AlexNet"): "alexnet",
    ("ImageNet", "MobileNet-v2"): "mobilenet_v2",
    ("MNIST", "LeNet-300-100"): "lenet-300-100",
    ("MNIST", "LeNet-5-Caffe"): "lenet-5",
}
COLUMNS = [
    "result_id", "paper", "dataset", "model", "method",
    "compression", "speedup", "top1", "orig_top1", "delta_top1",
]


def _percent(raw: pd.DataFrame, column: str) -> pd.Series:
    """A ``"93.58%"`` column as fractions (0.9358); empty cells stay NaN."""
    return pd.to_numeric(raw[column].astype("str").str.removesuffix("%"), errors="raise") / 100


def _ratio(raw: pd.DataFrame, ratio: str, kept: str, saved: str, original: str, new: str) -> pd.Series:
    """old/new from the first available of: the ratio, 1 / kept fraction, 1 / (1 - saved
    fraction), original size / new size."""
    return (
        raw[ratio]
        .fillna(1 / _percent(raw, kept))
        .fillna(1 / (1 - _percent(raw, saved)))
        .fillna(raw[original] / raw[new])
    )


def clean_results(raw: pd.DataFrame) -> pd.DataFrame:
    """Clean the survey's raw ``results.csv`` (as read by pandas) into :data:`COLUMNS`.

    ``top1`` is ``Top1`` or ``1 - Err1``; the paper's own dense baseline ``orig_top1`` is
    ``OrigTop1``, ``1 - OrigErr1``, or derived as ``top1 - dTop1`` (``dTop1`` is pruned minus
    dense); ``delta_top1`` is ``dTop1`` or ``top1 - orig_top1``. ``compression`` (old/new
    parameters) and ``speedup`` (old/new FLOPs, by each paper's own FLOP convention) come from
    the ratio columns, the kept or saved fractions, or the absolute sizes.
    """
    known = pd.Series([pair in MODELS for pair in zip(raw["Dataset"], raw["Model"])], index=raw.index)
    spec = raw["Method"].astype("str").str.startswith("Spec-", na=False)
    raw = raw[known & ~spec]
    top1 = _percent(raw, "Top1").fillna(1 - _percent(raw, "Err1"))
    orig = _percent(raw, "OrigTop1").fillna(1 - _percent(raw, "OrigErr1"))
    delta = _percent(raw, "dTop1")
    clean = pd.DataFrame({
        "result_id": raw["Name"],
        "paper": raw["Paper"],
        "dataset": raw["Dataset"].map(DATASETS),
        "model": [MODELS[pair] for pair in zip(raw["Dataset"], raw["Model"])],
        "method": raw["Method"],
        "compression": _ratio(raw, "old/new Nparam", "keptParams", "savedParams", "OrigMParams", "MParams"),
        "speedup": _ratio(raw, "old/new FLOPS", "keptFLOPS", "savedFLOPS", "OrigGFLOPS", "GFLOPS"),
        "top1": top1.fillna(orig + delta),
        "orig_top1": orig.fillna(top1 - delta),
        "delta_top1": delta.fillna(top1 - orig),
    })
    usable = clean["delta_top1"].notna() & (clean["compression"].notna() | clean["speedup"].notna())
    numbers = ["compression", "speedup", "top1", "orig_top1", "delta_top1"]
    clean = clean[usable].astype({"result_id": "int64"})
    clean[numbers] = clean[numbers].round(6)
    return clean.sort_values(["dataset", "model", "paper", "result_id"]).reset_index(drop=True)


def load_literature() -> pd.DataFrame:
    """The packaged, cleaned literature results (:data:`COLUMNS`)."""
    with resources.files("shrink.report").joinpath("data/literature.csv").open("rb") as f:
        return pd.read_csv(f)
