"""Exact top-k selection: hand-checked masks, ties by flat index, both recovery paths, bad scores."""

import pytest
import torch

from shrink.pruning.select import _sparse_nonzero, proportional_counts, select_global, select_per_layer


def _as_lists(masks):
    return {name: mask.int().tolist() for name, mask in masks.items()}


def test_global_selection_keeps_the_largest_and_breaks_ties_by_flat_index():
    scores = {"a": torch.tensor([[3.0, 1.0], [2.0, 2.0]]), "b": torch.tensor([2.0, 5.0, 0.0])}
    # 5 and 3 are kept; three scores equal 2 compete for the last two places: a[1,0] and a[1,1] come first.
    assert _as_lists(select_global(scores, 4)) == {"a": [[1, 0], [1, 1]], "b": [0, 1, 0]}
    assert _as_lists(select_global(scores, 5)) == {"a": [[1, 0], [1, 1]], "b": [1, 1, 0]}


def test_keeping_nothing_or_everything():
    scores = {"a": torch.rand(3, 4), "b": torch.rand(5)}
    assert all(not mask.any() for mask in select_global(scores, 0).values())
    assert all(mask.all() for mask in select_global(scores, 17).values())
    with pytest.raises(ValueError, match=r"cannot keep 18 of 17 scores: k must be in \[0, 17\]"):
        select_global(scores, 18)


def test_int32_scores_are_exact_ranks():
    scores = {"a": torch.tensor([4, 0, 7], dtype=torch.int32), "b": torch.tensor([[6, 1], [5, 2]], dtype=torch.int32)}
    assert _as_lists(select_global(scores, 3)) == {"a": [0, 0, 1], "b": [[1, 0], [1, 0]]}


@pytest.mark.parametrize("k", [1, 37, 5_000, 123_456, 199_999])
def test_matches_a_full_sort_on_many_distinct_scores(k):
    generator = torch.Generator().manual_seed(k)
    values = torch.randperm(200_000, generator=generator).float()
    scores = {"a": values[:70_000].view(700, 100), "b": values[70_000:]}
    masks = select_global(scores, k)
    kept = torch.cat([masks["a"].view(-1), masks["b"]])
    assert torch.equal(kept, values >= 200_000 - k)


def test_a_misleading_sample_is_recovered_on_both_sides():
    # The strided sample reads every 16th score: make the sampled scores unlike the rest.
    n = 1 << 20
    sampled = torch.zeros(n, dtype=torch.bool)
    sampled[::16] = True
    rest = torch.randperm(n - n // 16, generator=torch.Generator().manual_seed(0)).float() + 1

    low_sample = torch.zeros(n)  # sampled = 0, the rest higher: the k-th largest lies above the bracket
    low_sample[~sampled] = rest
    kept = select_global({"x": low_sample}, 1000)["x"]
    assert int(kept.sum()) == 1000 and torch.equal(kept, low_sample > len(rest) - 1000)

    high_sample = torch.full((n,), 1e9)  # sampled huge, the rest lower: the k-th largest lies below
    high_sample[~sampled] = rest
    kept = select_global({"x": high_sample}, 200_000)["x"]
    assert torch.equal(kept, high_sample > len(rest) - (200_000 - n // 16))


def test_per_layer_selection_keeps_the_given_count_in_each_tensor():
    scores = {"a": torch.tensor([1.0, 4.0, 2.0, 3.0]), "b": torch.tensor([9.0, 8.0, 7.0])}
    assert _as_lists(select_per_layer(scores, {"a": 2, "b": 0})) == {"a": [0, 1, 0, 1], "b": [0, 0, 0]}
    with pytest.raises(ValueError, match="cannot keep 4 of the 3 scores of b"):
        select_per_layer(scores, {"a": 0, "b": 4})
    with pytest.raises(ValueError, match="counts are for"):
        select_per_layer(scores, {"a": 1})


def test_proportional_counts_sum_exactly_with_largest_remainders_first():
    # Exact shares 1.5, 1.5, 2.0: floors 1, 1, 2; the one unit left goes to the first of the tied remainders.
    assert proportional_counts({"a": 3, "b": 3, "c": 4}, 5) == {"a": 2, "b": 1, "c": 2}
    # Shares 7 * (1, 2, 4) / 7 are exact.
    assert proportional_counts({"a": 1, "b": 2, "c": 4}, 7) == {"a": 1, "b": 2, "c": 4}
    assert proportional_counts({"a": 10, "b": 990}, 3) == {"a": 0, "b": 3}


def test_negative_zero_counts_as_zero():
    scores = {"a": torch.tensor([-0.0, 0.0, 1.0])}
    assert _as_lists(select_global(scores, 2)) == {"a": [1, 0, 1]}


@pytest.mark.parametrize(
    ("score", "error", "message"),
    [
        (torch.tensor([1.0, -0.5]), ValueError, "scores of w must be non-negative and not NaN"),
        (torch.tensor([1.0, float("nan")]), ValueError, "scores of w must be non-negative and not NaN"),
        (torch.tensor([-0.0, -float("nan")]), ValueError, "scores of w must be non-negative and not NaN"),
        (torch.tensor([3, -1], dtype=torch.int32), ValueError, "scores of w must be non-negative, got -1"),
        (torch.tensor([3, 1]), TypeError, "scores of w must be floating point or int32, got torch.int64"),
    ],
)
def test_bad_scores_are_rejected(score, error, message):
    with pytest.raises(error, match=message):
        select_global({"w": score}, 1)


def test_sparse_nonzero_finds_every_flag_in_order_whatever_the_length():
    generator = torch.Generator().manual_seed(0)
    for length in [0, 1, 7, 8, 9, 23, 64, 1001]:
        for density in (0.01, 0.5, 1.0):
            flags = torch.rand(length, generator=generator) < density
            assert torch.equal(_sparse_nonzero(flags), flags.nonzero().squeeze(1)), (length, density)
