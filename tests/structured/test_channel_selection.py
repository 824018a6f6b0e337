"""Which channels are removed, and how close the achieved compression lands, on hand-derived cases."""

import pytest
import torch
from torch import nn

from shrink.pruning.channels import (
    CompressionNotReached,
    channel_masks,
    channel_scores,
    trace_channels,
)
from tests.structured.nets import ResNet, randomized, vgg


def tiny_mlp() -> nn.Module:
    """6 -> 4 -> 3 -> 2. Hidden neuron i of the first layer has |w| = i + 1 everywhere; of the second
    layer, |w| = 0.5, 5, 6. Parameters: 28 + 15 + 8 = 51; with a and b hidden neurons kept,
    7a + ab + 3b + 2 of them."""
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model[-1].is_classifier = True
    signs = lambda n: torch.tensor([(-1.0) ** j for j in range(n)])  # noqa: E731
    with torch.no_grad():
        model[0].weight.copy_(torch.arange(1.0, 5.0)[:, None] * signs(6))
        model[2].weight.copy_(torch.tensor([0.5, 5.0, 6.0])[:, None] * signs(4))
        for layer in model[0], model[2], model[4]:
            layer.bias.fill_(0.25)
        model[4].weight.fill_(1.0)
    return model


def kept(masks, model):
    return {name: int(masks[name].sum()) if name in masks else p.numel() for name, p in model.named_parameters()}


X6 = torch.randn(3, 6)


def test_global_l1_removes_the_lowest_mean_magnitudes_first():
    model = tiny_mlp()
    masks = channel_masks(model, X6, 51 / 35, criterion="l1", scope="global")  # second-layer 0, then first-layer 0
    assert masks["0.weight"].all(1).tolist() == [False, True, True, True]
    assert masks["0.bias"].tolist() == [False, True, True, True]
    assert masks["2.weight"].tolist() == [[False] * 4, [False, True, True, True], [False, True, True, True]]
    assert masks["2.bias"].tolist() == [False, True, True]
    assert masks["4.weight"].tolist() == [[False, True, True]] * 2
    assert "4.bias" not in masks
    assert sum(kept(masks, model).values()) == 35  # a = 3, b = 2


def test_layer_scope_removes_equal_fractions_where_global_cannot_land():
    # 21 parameters = a 2, b 1: half of each hidden layer. Global order removes the first layer's
    # neurons 0, 1, 2 before the second layer's neuron 1, so it jumps from 26 to 17 parameters.
    layer = channel_masks(tiny_mlp(), X6, 51 / 21, criterion="l1", scope="layer")
    assert layer["0.bias"].tolist() == [False, False, True, True]
    assert layer["2.bias"].tolist() == [False, False, True]
    with pytest.raises(CompressionNotReached, match=r"reach 3\.000x, not 2\.42857x within 5%"):
        channel_masks(tiny_mlp(), X6, 51 / 21, criterion="l1", scope="global")


def test_unreachable_compression_names_the_most_reachable():
    # Every layer keeps one neuron: a = b = 1 leaves 7 + 1 + 3 + 2 = 13 parameters, 51 / 13 = 3.92x.
    with pytest.raises(CompressionNotReached, match=r"at most 3\.92x"):
        channel_masks(tiny_mlp(), X6, 5.0, criterion="l2", scope="global")


def test_l1_and_l2_rank_a_peaked_filter_differently():
    model = tiny_mlp()
    with torch.no_grad():
        model[0].weight[0] = torch.tensor([3.0, 0, 0, 0, 0, 0])  # mean |w| 0.5, rms sqrt(1.5)
        model[0].weight[1] = torch.ones(6)  # mean |w| 1, rms 1
    group = next(g for g in trace_channels(model, X6).groups if g.root == "0")
    params = dict(model.named_parameters())
    assert channel_scores(group, params, "l1").tolist() == [0.5, 1.0, 3.0, 4.0]
    assert channel_scores(group, params, "l2")[:2].tolist() == pytest.approx([1.5**0.5, 1.0])


def test_bn_removes_the_smallest_batchnorm_scales():
    model = randomized(vgg())
    with torch.no_grad():
        model[1].weight.copy_(torch.linspace(1.0, 2.0, 16))
        model[1].weight[[3, 7]] = torch.tensor([0.01, 0.02])
        for bn in model[5], model[9]:
            bn.weight.fill_(3.0)
    # Conv 0 channel: 27 + 1 weights/bias, 2 BatchNorm, 32 x 9 inputs of conv 4 = 318 parameters.
    total = sum(p.numel() for p in model.parameters())
    masks = channel_masks(model, torch.randn(2, 3, 32, 32), total / (total - 2 * 318), criterion="bn", scope="global")
    assert (~masks["1.weight"]).nonzero().flatten().tolist() == [3, 7]
    assert set(masks) == {"0.weight", "0.bias", "1.weight", "1.bias", "4.weight"}


def test_bn_on_a_model_without_batchnorm_is_refused():
    with pytest.raises(ValueError, match="no channel of this model can be scored by 'bn'"):
        channel_masks(tiny_mlp(), X6, 1.5, criterion="bn", scope="layer")


def test_a_model_without_a_marked_classifier_is_refused():
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="is_classifier = True"):
        channel_masks(model, X6, 1.5, criterion="l1", scope="global")


@pytest.mark.parametrize("bad", [{"compression": 0.5}, {"scope": "network"}, {"criterion": "l3"}])
def test_bad_arguments_are_refused(bad):
    args = {"compression": 1.5, "criterion": "l1", "scope": "global", **bad}
    with pytest.raises(ValueError, match=r"compression must be a finite number >= 1|unknown channel (scope|criterion)"):
        channel_masks(tiny_mlp(), X6, args.pop("compression"), **args)


def test_residual_stream_is_one_group_with_every_writer_and_reader():
    traced = trace_channels(randomized(ResNet("B")), torch.randn(2, 3, 32, 32))
    stem = next(g for g in traced.groups if g.root == "conv")
    assert stem.channels == 16
    assert {(s.param, s.dim) for s in stem.slices} == {
        ("conv.weight", 0), ("bn.weight", 0), ("bn.bias", 0),
        ("layers.0.conv1.weight", 1),
        ("layers.0.conv2.weight", 0), ("layers.0.bn2.weight", 0), ("layers.0.bn2.bias", 0),
        ("layers.1.conv1.weight", 1), ("layers.1.shortcut.0.weight", 1),
    }  # fmt: skip
    assert {s.param for s in stem.slices_of("filter")} == {"conv.weight", "layers.0.conv2.weight"}
    assert sorted(g.root for g in traced.groups) == [
        "conv", "layers.0.conv1", "layers.1.conv1", "layers.1.shortcut.0", "layers.2.conv1", "layers.2.shortcut.0",
    ]  # fmt: skip


def test_padding_shortcut_streams_stay_whole_with_the_reason():
    traced = trace_channels(randomized(ResNet("A")), torch.randn(2, 3, 32, 32))
    assert sorted(g.root for g in traced.groups) == ["layers.0.conv1", "layers.1.conv1", "layers.2.conv1"]
    assert set(traced.fixed) == {"conv", "fc"}
    assert "a shortcut it cannot follow" in traced.fixed["conv"]
    assert traced.fixed["fc"] == "writes the outputs of classifier 'fc'"
