"""A matched baseline given its reference trial's rounds keeps exactly those per-layer counts at every round,
also where the reference's own fine-tuning moved them away from the dense base's allocation."""

import copy

import pytest
import torch
from torch import nn

from shrink.pruning import Pruner, get_masks
from shrink.pruning.rounds import PruningRound


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def kept(model: nn.Module) -> dict[str, int]:
    return {name: int(mask.count_nonzero()) for name, mask in get_masks(model).items()}


def reference_trial(model: nn.Module, compressions: list[float]) -> list[PruningRound]:
    """global-magnitude, round by round, with "fine-tuning" in between that makes layer 2's weights the largest."""
    pruner, rounds = Pruner(model, "global-magnitude"), []
    for compression in compressions:
        rounds.append(PruningRound.of_masks(compression, pruner(compression)))
        with torch.no_grad():
            model[2].weight.mul_(10.0)  # the next round's global ranking now favours layer 2
    return rounds


def test_matched_keeps_the_recorded_counts_of_every_round_not_the_dense_allocation():
    dense = net()
    rounds = reference_trial(copy.deepcopy(dense), [2.0, 4.0])
    # Layer 2 grows between the rounds, so the reference's second round keeps more of it than the dense base's
    # allocation at 4x would: the two differ, which is what the recorded rounds are for.
    allocation = Pruner(copy.deepcopy(dense), "global-magnitude")
    assert rounds[1].kept != {name: int(m.count_nonzero()) for name, m in allocation(4.0).items()}

    for family in ("random-matched", "magnitude-matched"):
        model = copy.deepcopy(dense)
        matched = Pruner(model, f"{family}:global-magnitude", seed=3, reference_rounds=rounds)
        for recorded in rounds:
            matched(recorded.compression)
            assert kept(model) == dict(recorded.kept), family


def test_recorded_rounds_are_found_by_compression_so_a_resumed_trial_keeps_its_next_round():
    dense = net()
    rounds = reference_trial(copy.deepcopy(dense), [2.0, 4.0])
    model = copy.deepcopy(dense)
    Pruner(model, "random-matched:global-magnitude", seed=0, reference_rounds=rounds)(4.0)  # a fresh pruner, round 2
    assert kept(model) == dict(rounds[1].kept)


def test_a_round_the_reference_did_not_make_and_a_non_matched_strategy_are_refused():
    dense = net()
    rounds = reference_trial(copy.deepcopy(dense), [2.0, 4.0])
    matched = Pruner(copy.deepcopy(dense), "random-matched:global-magnitude", reference_rounds=rounds)
    with pytest.raises(ValueError, match=r"^the reference recorded no round at compression 3 \(it recorded: 2, 4\)$"):
        matched(3.0)
    with pytest.raises(ValueError, match="global-magnitude is not a matched baseline: it takes no reference rounds"):
        Pruner(copy.deepcopy(dense), "global-magnitude", reference_rounds=rounds)


def test_rounds_round_trip_through_plain_values():
    recorded = PruningRound(2.0, {"0.weight": 24, "2.weight": 40})
    assert PruningRound.from_dict(recorded.to_dict()) == recorded
