"""Model size: how many parameters a model has, and how many of them are nonzero."""

import math

import torch
from torch import nn


def model_size(model: nn.Module) -> tuple[int, int]:
    """``(total, nonzero)`` over all parameters (shared parameters counted once)."""
    params = list(model.parameters())
    total = sum(param.numel() for param in params)
    nonzero = sum(int(torch.count_nonzero(param)) for param in params)
    return total, nonzero


def compression_ratio(model: nn.Module) -> float:
    """Total parameters / nonzero parameters (the paper's compression ratio; inf if all are zero)."""
    total, nonzero = model_size(model)
    return total / nonzero if nonzero else math.inf
