"""Masks stay exact: through SGD with momentum, Adam, torch.compile, and a state_dict round trip."""

import io

import pytest
import torch
from torch import nn

from shrink.pruning import apply_masks, get_masks, keep_masked, load_pruned, prune


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def _train(model, optimizer, steps):
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(8, 6, generator=generator), torch.randint(0, 3, (8,), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def _zeros(model):
    return {name: (param == 0) for name, param in model.named_parameters() if name in get_masks(model)}


def test_masks_are_buffers_beside_their_weights_and_the_weights_are_zeroed():
    model = _net()
    masks = prune(model, "global-magnitude", 2)  # 435 params: 218 nonzero; 83 unprunable, so keep 135 of 352
    assert sum(int(mask.sum()) for mask in masks.values()) == 135
    assert list(get_masks(model)) == ["0.weight", "2.weight"]
    assert model[0].weight_mask is masks["0.weight"] and model[0].weight_mask.dtype == torch.bool
    assert torch.equal(model[0].weight != 0, masks["0.weight"])
    assert [key for key in model.state_dict() if key.endswith("_mask")] == ["0.weight_mask", "2.weight_mask"]


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3),
        lambda params: torch.optim.Adam(params, lr=0.01),
    ],
    ids=["sgd-momentum", "adam"],
)
def test_pruned_weights_stay_exactly_zero_across_optimizer_steps(make_optimizer):
    model = _net()
    optimizer = make_optimizer(model.parameters())
    _train(model, optimizer, 3)  # momentum and Adam moments now hold state for every weight
    masks = prune(model, "global-magnitude", 2)
    handle = keep_masked(model, optimizer)
    _train(model, optimizer, 5)
    assert {name: torch.equal(zero, ~masks[name]) for name, zero in _zeros(model).items()} == {
        "0.weight": True,
        "2.weight": True,
    }
    handle.remove()  # without the hook the optimizer state brings pruned weights back
    _train(model, optimizer, 1)
    assert int((model[0].weight != 0).sum()) > int(masks["0.weight"].sum())


def test_a_compiled_model_keeps_its_pruned_weights_at_zero():
    # Bias-free Linear layers only: inductor then emits no C++ kernel, which keeps a cold compile at seconds.
    model = nn.Sequential(nn.Linear(6, 16, bias=False), nn.Linear(16, 3, bias=False))
    masks = prune(model, "random", 3, seed=0, prune_classifier=True)
    compiled = torch.compile(model)
    optimizer = torch.optim.SGD(compiled.parameters(), lr=0.1, momentum=0.9)
    keep_masked(compiled, optimizer)
    _train(compiled, optimizer, 3)
    assert all(torch.equal(zero, ~masks[name]) for name, zero in _zeros(model).items())
    assert list(get_masks(compiled)) == ["_orig_mod.0.weight", "_orig_mod.1.weight"]


def test_a_saved_pruned_model_loads_into_a_fresh_one_with_its_masks():
    model = _net()
    masks = prune(model, "layer-magnitude", 2)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = _net(seed=1)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        fresh.load_state_dict(torch.load(buffer))
    buffer.seek(0)
    load_pruned(fresh, torch.load(buffer))
    assert {name: torch.equal(mask, masks[name]) for name, mask in get_masks(fresh).items()} == {
        "0.weight": True,
        "2.weight": True,
    }
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    optimizer = torch.optim.Adam(fresh.parameters(), lr=0.01)
    keep_masked(fresh, optimizer)
    _train(fresh, optimizer, 3)
    assert all(torch.equal(zero, ~masks[name]) for name, zero in _zeros(fresh).items())


def test_pruning_again_replaces_the_masks_and_the_hook_follows():
    model = _net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    keep_masked(model, optimizer)
    prune(model, "global-magnitude", 2)
    _train(model, optimizer, 2)  # the hook has listed the 2x masks
    masks = prune(model, "global-magnitude", 4)  # 435 / 4: 109 nonzero, keep 26
    assert sum(int(mask.sum()) for mask in get_masks(model).values()) == 26
    _train(model, optimizer, 3)
    assert all(torch.equal(zero, ~masks[name]) for name, zero in _zeros(model).items())


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        ({"9.weight": torch.ones(3, 3, dtype=torch.bool)}, "cannot mask '9.weight': the model has no parameter"),
        ({"0.weight": torch.ones(16, 6)}, r"mask for 0.weight must be bool of shape \(16, 6\), got torch.float32"),
        ({"0.weight": torch.ones(6, 16, dtype=torch.bool)}, r"of shape \(16, 6\), got torch.bool of shape \(6, 16\)"),
    ],
)
def test_bad_masks_are_rejected_before_anything_changes(masks, message):
    model = _net()
    with pytest.raises(ValueError, match=message):
        apply_masks(model, masks)
    assert get_masks(model) == {}
