"""A per-layer table: where the parameters, the zeros and the multiply-accumulates are."""

import math

import pandas as pd
import torch
from torch import Tensor, nn

from shrink.metrics.macs import layer_macs

COLUMNS = ["name", "shape", "params", "nonzero", "density", "macs"]


def layer_table(model: nn.Module, inputs: Tensor) -> pd.DataFrame:
    """One row per module that owns parameters, in model order: ``name``, ``shape`` (of its weight, or
    its first parameter, as ``"64x3x7x7"``), ``params`` and ``nonzero`` (all its own parameters),
    ``density`` (nonzero / params) and ``macs`` (per example, 0 for modules that are not Conv/Linear)."""
    per_layer = layer_macs(model, inputs)
    rows = []
    for name, module in model.named_modules():
        params = dict(module.named_parameters(recurse=False))
        if not params:
            continue
        shaped = params.get("weight", next(iter(params.values())))
        size = sum(param.numel() for param in params.values())
        nonzero = sum(int(torch.count_nonzero(param)) for param in params.values())
        rows.append(
            (
                name,
                "x".join(str(dim) for dim in shaped.shape),
                size,
                nonzero,
                nonzero / size if size else math.nan,
                per_layer.get(name, (0, 0))[0],
            )
        )
    return pd.DataFrame(rows, columns=COLUMNS)
