"""Channel strategies through ``prune``: masks attached to the model, metrics of the removed model,
pruning again only removes more, and the refusals."""

import copy

import pytest
import torch

from shrink import metrics
from shrink.pruning import get_masks, get_strategy, physically_prune, prune, resolve_strategy
from tests.structured.nets import ResNet, mlp, randomized

X = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def test_short_names_follow_each_paper():
    assert resolve_strategy("channel-l1") == "layer-channel-l1"  # Li et al. 2017: per layer
    assert resolve_strategy("channel-l2") == "layer-channel-l2"
    assert resolve_strategy("channel-bn") == "global-channel-bn"  # Liu et al. 2017: one global threshold
    assert get_strategy("global-channel-l1").structure == "channels"


def test_removed_model_has_the_size_and_macs_the_metrics_give_the_masked_one():
    model = randomized(ResNet("B"))
    masks = prune(model, "channel-l1", 2.0, inputs=X)
    assert get_masks(model).keys() == masks.keys()
    total, nonzero = metrics.model_size(model)
    small = physically_prune(model, masks, X)
    assert not get_masks(small)  # a plain dense model
    assert metrics.model_size(small) == (nonzero, nonzero)
    dense_macs, nonzero_macs = metrics.macs(model, X)
    assert metrics.macs(small, X) == (nonzero_macs, nonzero_macs)
    assert nonzero_macs < dense_macs
    assert abs(metrics.compression_ratio(model) / 2.0 - 1) <= 0.05
    assert total == sum(p.numel() for p in ResNet("B").parameters())


@pytest.mark.parametrize("strategy, inputs", [("random", None), ("global-channel-bn", X)])
def test_pruning_again_only_removes_more(strategy, inputs):
    model = randomized(ResNet("B"))
    first = {k: v.clone() for k, v in prune(model, strategy, 2.0, inputs=inputs, seed=0).items()}
    second = prune(model, strategy, 4.0, inputs=inputs, seed=1)
    assert first.keys() <= second.keys()
    for name, mask in first.items():
        assert not (second[name] & ~mask).any(), name
    assert metrics.compression_ratio(model) == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("channel-l1", {}, "traces the model: pass inputs="),
        ("channel-l1", {"inputs": torch.randn(2, 1, 28, 28), "prune_classifier": True}, "prune_classifier must be False"),
        ("random-matched:channel-l1", {}, "removes whole channels; matched families reproduce per-weight counts"),
        ("channel-l2", {"inputs": torch.randn(2, 1, 28, 28)}, "at most"),  # 100x: every layer keeps a neuron
    ],
)
def test_refusals(name, kwargs, message):
    model = mlp()
    compression = 100.0 if name == "channel-l2" else 2.0
    with pytest.raises(ValueError, match=message):
        prune(copy.deepcopy(model), name, compression, **kwargs)
