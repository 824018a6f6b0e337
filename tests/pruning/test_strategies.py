"""The built-in strategies on hand-built models: exact scores, exact masks, the registry and its errors."""

import copy
import math

import pytest
import torch
from torch import nn

from shrink.pruning import ScoreContext, get_strategy, prune, register_strategy, resolve_strategy, strategies
from shrink.pruning import registry
from shrink.pruning.select import proportional_counts
from shrink.pruning.builtin.activation import weight_times_activation
from shrink.pruning.builtin.gradient import weight_times_gradient


def _linear(weight):
    weight = torch.tensor(weight)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


def _ctx(model, inputs=None, targets=None):
    layers = {name + ".weight" if name else "weight": module for name, module in model.named_modules()
              if isinstance(module, (nn.Linear, nn.Conv2d))}
    return ScoreContext(model, layers, inputs, targets, torch.Generator().manual_seed(0))


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test go to a copy of the registry."""
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setattr(registry, "_aliases", dict(registry._aliases))


def test_builtins_in_order_with_their_shrinkbench_aliases():
    listed = {name: (s.scope, s.aliases, s.needs_data, s.structure) for name, s in strategies().items()}
    assert listed == {
        "global-magnitude": ("global", ("GlobalMagWeight",), False, "weights"),
        "layer-magnitude": ("layer", ("LayerMagWeight",), False, "weights"),
        "global-gradient": ("global", ("GlobalMagGrad",), True, "weights"),
        "layer-gradient": ("layer", ("LayerMagGrad",), True, "weights"),
        "global-activation": ("global", ("GlobalMagAct",), True, "weights"),
        "layer-activation": ("layer", ("LayerMagAct",), True, "weights"),
        "random": ("global", ("RandomPruning",), False, "weights"),
        "layer-random": ("layer", (), False, "weights"),
        "global-channel-l1": ("global", (), True, "channels"),
        "layer-channel-l1": ("layer", ("channel-l1",), True, "channels"),
        "global-channel-l2": ("global", (), True, "channels"),
        "layer-channel-l2": ("layer", ("channel-l2",), True, "channels"),
        "global-channel-bn": ("global", ("channel-bn",), True, "channels"),
        "layer-channel-bn": ("layer", (), True, "channels"),
    }


def test_names_resolve_through_aliases_and_matched_families():
    assert resolve_strategy("GlobalMagWeight") == "global-magnitude"
    matched = get_strategy("magnitude-matched:LayerMagAct")
    assert (matched.name, matched.needs_data, matched.matched.name) == (
        "magnitude-matched:layer-activation", True, "layer-activation")
    assert resolve_strategy("layer-random") == "layer-random"
    assert resolve_strategy("random-matched:GlobalMagGrad") == "random-matched:global-gradient"
    with pytest.raises(ValueError, match=r"unknown strategy 'magnitude'; known: global-magnitude, .*GlobalMagWeight"):
        resolve_strategy("magnitude")
    with pytest.raises(ValueError, match="unknown strategy family 'lucky-matched'"):
        resolve_strategy("lucky-matched:random")
    with pytest.raises(ValueError, match="must match a registered strategy, not another match"):
        resolve_strategy("random-matched:magnitude-matched:random")


def test_global_and_layer_magnitude_differ_exactly_as_expected():
    # Layer 0 has large weights, layer 1 small ones; the classifier is pruned too here.
    model = nn.Sequential(_linear([[4.0, -3.0], [2.0, 1.0]]), _linear([[0.5, -0.25], [0.125, 0.0625]]))
    glob = prune(model, "global-magnitude", 2, prune_classifier=True)  # keep 4 of 8
    assert {n: m.int().tolist() for n, m in glob.items()} == {"0.weight": [[1, 1], [1, 1]], "1.weight": [[0, 0], [0, 0]]}
    assert model[1].weight.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    model = nn.Sequential(_linear([[4.0, -3.0], [2.0, 1.0]]), _linear([[0.5, -0.25], [0.125, 0.0625]]))
    layer = prune(model, "layer-magnitude", 2, prune_classifier=True)
    assert {n: m.int().tolist() for n, m in layer.items()} == {"0.weight": [[1, 1], [0, 0]], "1.weight": [[1, 1], [0, 0]]}
    assert model[1].weight.tolist() == [[0.5, -0.25], [0.0, 0.0]]


def test_gradient_scores_are_weight_times_gradient_of_the_cross_entropy():
    # logits = W x = [1, 3] for x = [1, 0]; dL/dlogits = softmax - onehot(0) = [p0 - 1, p1]; dL/dW = outer(., x).
    model = _linear([[1.0, 2.0], [3.0, 4.0]])
    model.train()
    scores = weight_times_gradient(_ctx(model, torch.tensor([[1.0, 0.0]]), torch.tensor([0])))["weight"]
    p1 = 1 / (1 + math.exp(-2))
    assert torch.allclose(scores, torch.tensor([[p1, 0.0], [3 * p1, 0.0]]))
    assert model.training and model.weight.grad is None
    # Magnitude would keep 3 and 4; the gradient keeps the weights the loss depends on.
    masks = prune(model, "global-gradient", 2, inputs=torch.tensor([[1.0, 0.0]]), targets=torch.tensor([0]),
                  prune_classifier=True)
    assert masks["weight"].int().tolist() == [[1, 0], [1, 0]]


def test_activation_scores_scale_weights_by_mean_absolute_input_per_channel():
    model = _linear([[1.0, -2.0, 1.0], [1.0, 1.0, 1.0]])
    inputs = torch.tensor([[1.0, -2.0, 0.0], [3.0, 0.0, 0.0]])  # mean |x| per feature: 2, 1, 0
    scores = weight_times_activation(_ctx(model, inputs))["weight"]
    assert scores.tolist() == [[2.0, 2.0, 0.0], [2.0, 1.0, 0.0]]


def test_gradient_scores_use_batchnorm_running_statistics_not_the_batchs():
    # The documented difference from ShrinkBench (train mode): BatchNorm's running mean 2 and variance 4
    # normalize the batch x = [[0], [2]], not the batch's own mean and variance, which train mode would use.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 2, bias=False), nn.BatchNorm1d(2), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0], [2.0]]))
        model[1].running_mean.copy_(torch.tensor([2.0, 2.0]))
        model[1].running_var.copy_(torch.tensor([4.0, 4.0]))
    model.train()
    x, y = torch.tensor([[0.0], [2.0]]), torch.tensor([0, 1])
    scores = weight_times_gradient(_ctx(model, x, y))
    expected = {}
    for mode in (False, True):
        copied = copy.deepcopy(model).train(mode)
        loss = nn.functional.cross_entropy(copied(x), y)
        grads = torch.autograd.grad(loss, [copied[0].weight, copied[2].weight])
        expected[mode] = [(w.detach() * g).abs() for w, g in zip((copied[0].weight, copied[2].weight), grads)]
    torch.testing.assert_close([scores["0.weight"], scores["2.weight"]], expected[False], rtol=0, atol=0)
    assert not torch.allclose(scores["2.weight"], expected[True][1])
    assert model[1].running_mean.tolist() == [2.0, 2.0] and model.training  # nothing in the model changed


def test_activation_scores_use_mean_absolute_input_not_absolute_mean():
    # The documented difference from ShrinkBench: inputs +3 and -3 cancel on average (|mean x| = 0) but
    # each is 3 away from zero (mean |x| = 3), so the weight they meet keeps its score.
    scores = weight_times_activation(_ctx(_linear([[1.0, 1.0]]), torch.tensor([[3.0, 1.0], [-3.0, 1.0]])))
    assert scores["weight"].tolist() == [[3.0, 1.0]]


def test_activation_scores_follow_conv_groups_to_their_input_channels():
    conv = nn.Conv2d(4, 4, 1, groups=2, bias=False)
    nn.init.ones_(conv.weight)
    inputs = torch.arange(1.0, 5.0).view(1, 4, 1, 1).expand(2, 4, 3, 3)  # channel c has |x| = c + 1
    scores = weight_times_activation(_ctx(conv, inputs))["weight"]
    # Outputs 0, 1 read channels 0, 1; outputs 2, 3 read channels 2, 3.
    assert scores.view(4, 2).tolist() == [[1.0, 2.0], [1.0, 2.0], [3.0, 4.0], [3.0, 4.0]]


def test_random_is_exact_and_reproducible_from_the_seed():
    model = nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 10))
    first = prune(model, "random", 1.5, seed=7)["0.weight"]
    again = prune(nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 10)), "random", 1.5, seed=7)["0.weight"]
    other = prune(nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 10)), "random", 1.5, seed=8)["0.weight"]
    # 940 parameters / 1.5 = 626.7: 627 nonzero, of which 340 are not prunable.
    assert int(first.sum()) == 627 - 340
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_without_a_seed_random_follows_torchs_global_generator():
    def masks():
        torch.manual_seed(5)
        return prune(nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 10)), "random", 1.5)["0.weight"]

    assert torch.equal(masks(), masks())


def test_compression_one_prunes_nothing():
    model = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 2))
    before = [param.clone() for param in model.parameters()]
    masks = prune(model, "global-magnitude", 1)
    assert all(mask.all() for mask in masks.values())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_random_is_uniform_over_positions():
    # Keep 5 of 20 weights 800 times: each weight is kept with probability 1/4 (sd of the count ~12).
    layer = nn.Linear(4, 5, bias=False)  # a fresh copy per seed: pruning a pruned layer only removes more
    kept = sum(prune(copy.deepcopy(layer), "random", 4, seed=seed, prune_classifier=True)["weight"].int()
               for seed in range(800))
    assert kept.sum() == 800 * 5
    assert 150 <= int(kept.min()) and int(kept.max()) <= 250


def test_matched_baselines_reproduce_the_per_layer_counts_of_their_strategy():
    def net():
        torch.manual_seed(3)
        return nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 4))

    reference = prune(net(), "global-magnitude", 3)  # 484 / 3: 161 nonzero, 61 prunable weights kept
    counts = {name: int(mask.sum()) for name, mask in reference.items()}
    assert sum(counts.values()) == 61 and counts != proportional_counts({"0.weight": 128, "1.weight": 256}, 61)
    randomized = prune(net(), "random-matched:global-magnitude", 3, seed=0)
    assert {name: int(mask.sum()) for name, mask in randomized.items()} == counts
    assert not torch.equal(randomized["1.weight"], reference["1.weight"])
    model = net()
    magnitude = prune(model, "magnitude-matched:random", 3, seed=0)
    random_counts = {name: int(mask.sum()) for name, mask in prune(net(), "random", 3, seed=0).items()}
    assert {name: int(mask.sum()) for name, mask in magnitude.items()} == random_counts
    for name, mask in magnitude.items():  # within each layer, the largest |w| are kept
        weight = dict(net().named_parameters())[name].abs()
        assert weight[mask].min() > weight[~mask].max()


def test_data_driven_strategies_need_a_batch():
    for name in ("global-gradient", "layer-activation", "random-matched:LayerMagGrad"):
        with pytest.raises(ValueError, match=f"strategy {name.replace('LayerMagGrad', 'layer-gradient')} "
                                             "scores on data: pass inputs= and targets="):
            prune(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), name, 2)


def test_a_layer_that_does_not_run_cannot_be_scored_by_activation():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused, self.classifier = nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return self.classifier(self.used(x))

    model = Net()
    with pytest.raises(ValueError, match="unused.weight did not run on the inputs"):
        prune(model, "global-activation", 1.5, inputs=torch.ones(1, 2), targets=torch.zeros(1, dtype=torch.long))


def test_a_registered_plugin_prunes_and_its_scores_are_checked(scratch_registry):
    @register_strategy("first-layers-first", description="keeps the earliest weights", aliases=("Earliest",))
    def earliest(ctx):
        sizes = [w.numel() for w in ctx.weights.values()]
        ranks = torch.arange(sum(sizes), 0, -1, dtype=torch.int32)
        return {name: r.view(w.shape) for (name, w), r in zip(ctx.weights.items(), ranks.split(sizes))}

    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False))
    masks = prune(model, "Earliest", 2)  # keep 6 of 12: the classifier's 4 + 2 prunable
    assert {n: m.int().view(-1).tolist() for n, m in masks.items()} == {"0.weight": [1, 1, 0, 0], "1.weight": [0] * 4}

    @register_strategy("broken", description="scores the wrong shape")
    def broken(ctx):
        return {name: torch.ones(3) for name in ctx.weights}

    with pytest.raises(ValueError, match=r"strategy broken: scores of 0.weight have shape \(3,\), the weight has \(2, 2\)"):
        prune(model, "broken", 2)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("global-magnitude", {}, "strategy name or alias 'global-magnitude' is already registered"),
        ("mine", {"aliases": ("GlobalMagWeight",)}, "'GlobalMagWeight' is already registered"),
        ("Mine", {}, "strategy name 'Mine' must be kebab-case"),
        ("mine", {"scope": "channel"}, "scope must be one of global, layer, got 'channel'"),
        ("mine", {"description": "two\nlines"}, "description must be one non-empty line"),
    ],
)
def test_registration_is_validated(scratch_registry, name, options, message):
    with pytest.raises(ValueError, match=message):
        register_strategy(name, **{"description": "one line", **options})
