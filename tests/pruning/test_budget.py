"""Which weights are prunable, and the exact kept count for a compression ratio."""

import math

import pytest
from torch import nn

from shrink.pruning import max_compression, prunable_layers
from shrink.pruning.budget import kept_count


def _net():
    # conv 3*4*9 + 4 = 112, bn 8, linear 4*6*6*10 + 10 = 1450, classifier 10*5 + 5 = 55; total 1625.
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.Flatten(),
        nn.Linear(144, 10),
        nn.Linear(10, 5),
    )


def test_the_last_linear_is_the_classifier_and_is_kept_unless_asked():
    net = _net()
    assert list(prunable_layers(net)) == ["0.weight", "3.weight"]
    assert list(prunable_layers(net, prune_classifier=True)) == ["0.weight", "3.weight", "4.weight"]


def test_a_marked_classifier_replaces_the_last_linear_rule_and_covers_its_children():
    net = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Dropout(), nn.Conv1d(4, 2, 1)), nn.Linear(2, 2))
    net[1].is_classifier = True
    assert list(prunable_layers(net)) == ["0.weight", "2.weight"]


def test_max_compression_is_total_over_unprunable():
    # Unprunable: conv bias 4, bn 8, linear bias 10, classifier 55 = 77.
    assert max_compression(_net()) == 1625 / 77
    # The classifier's weight (50) becomes prunable, its bias (5) not.
    assert max_compression(_net(), prune_classifier=True) == 1625 / 27
    assert max_compression(nn.Linear(3, 3, bias=False), prune_classifier=True) == 9.0


@pytest.mark.parametrize(
    ("compression", "kept"),
    [
        (1, 1548),  # everything prunable stays
        (2, 813 - 77),  # 1625 / 2 = 812.5 rounds half up to 813 nonzero
        (10, 163 - 77),
        (1625 / 77, 0),  # the largest reachable ratio prunes every prunable weight
    ],
)
def test_kept_count_hits_round_total_over_compression(compression, kept):
    net = _net()
    assert kept_count(net, prunable_layers(net), compression) == kept


def test_unreachable_compression_names_the_largest_reachable_ratio():
    net = _net()
    with pytest.raises(ValueError, match=r"compression 22 is unreachable: 77 of the 1,625 .* is 21\.103$"):
        kept_count(net, prunable_layers(net), 22)


@pytest.mark.parametrize("bad", [0.5, 0, -3, math.nan, math.inf])
def test_compression_must_be_finite_and_at_least_one(bad):
    net = _net()
    with pytest.raises(ValueError, match="compression must be a finite number >= 1"):
        kept_count(net, prunable_layers(net), bad)


@pytest.mark.parametrize("bad", ["4", None, True])
def test_compression_must_be_a_number(bad):
    net = _net()
    with pytest.raises(TypeError, match="compression must be a number"):
        kept_count(net, prunable_layers(net), bad)


def test_lazy_layers_must_be_initialized_first():
    with pytest.raises(ValueError, match=r"lazy layers 0.weight are uninitialized"):
        prunable_layers(nn.Sequential(nn.LazyLinear(3), nn.Linear(3, 2)))
