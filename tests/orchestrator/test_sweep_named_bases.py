"""``bases:`` crosses the grid with several named bases (the paper's Figure 8: two bases trained with other
learning rates can reverse the order of strategies); every trial records its base's name."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import digits_sweep_text
from shrink.orchestrator import SpecError, parse_spec
from shrink.orchestrator.spec import BaseKey

TWO = digits_sweep_text(strategies="[global-magnitude]", compressions="[4]", seeds="[0, 1]", pretrain="{epochs: 3}",
                        bases="[{name: fast, lr: 0.01}, {name: slow, lr: 0.0001, seed: 1}]")


def test_named_bases_cross_the_grid_and_each_trial_records_its_base():
    spec = parse_spec(TWO)
    assert spec.size == 2 * 2  # 2 bases x 2 seeds
    assert spec.bases() == [BaseKey("small-mlp", 0, "fast"), BaseKey("small-mlp", 1, "slow")]
    fast, slow = (spec.base_request(key) for key in spec.bases())
    # digits' recipe is Adam at 1e-3 for 30 epochs; pretrain.epochs (3) applies to both, each sets its own lr
    assert (fast.recipe().lr, fast.recipe().epochs, slow.recipe().lr, slow.recipe().epochs) == (0.01, 3, 0.0001, 3)
    assert fast.recipe().name != slow.recipe().name  # so they are two cache entries
    assert (fast.seed, slow.seed) == (0, 1)
    bases = {key: SimpleNamespace(path=Path(f"/{key.name}.pt"), sha256=str(i) * 64)
             for i, key in enumerate(spec.bases())}
    configs = spec.trial_configs(bases, tracking_uri="sqlite:////x.db", parent_run_id=None)
    assert [(c.base_name, c.seed, c.base_path) for c in configs] == [
        ("fast", 0, "/fast.pt"), ("fast", 1, "/fast.pt"), ("slow", 0, "/slow.pt"), ("slow", 1, "/slow.pt")]
    lines = spec.describe().splitlines()
    assert lines[0] == "sweep tiny: 4 trials on digits (1 model x 2 bases x 1 strategy x 1 compression x 2 seeds)"
    # With compression 1 and two strategies, each base and seed has its own dense control, shared by both.
    dense = parse_spec(TWO.replace("compressions: [4]", "compressions: [1, 4]").replace("[global-magnitude]",
                                                                                        "[global-magnitude, random]"))
    assert (len(dense.grid()), dense.size) == (16, 12)
    assert [(p.base, p.seed) for p in dense.trials() if p.control_for] == [("fast", 0), ("fast", 1), ("slow", 0),
                                                                          ("slow", 1)]
    assert lines[1] == ("bases: fast: small-mlp pretrain seed 0, epochs 3, lr 0.01; "
                        "slow: small-mlp pretrain seed 1, epochs 3, lr 0.0001")


@pytest.mark.parametrize(("bases", "extra", "message"), [
    ("[{name: a}, {name: a}]", "", "bases: 'a' is listed twice"),
    ("[{name: a, lr: -1}]", "", "bases[0].lr: lr must be a number > 0, got -1"),
    ("[{name: a, momentumm: 0.9}]", "", "bases[0].momentumm: recipe field 'momentumm' cannot be overridden; known: "
                                       "optimizer, lr, batch_size, momentum, nesterov, weight_decay, schedule"),
    ("[{name: tv, base: torchvision, seed: 1}]", "",
     "bases[0]: base 'tv' is trained elsewhere: seed and recipe fields apply to pretrain only"),
    ("[{lr: 0.1}]", "", "bases[0].name: None is not a name"),
    ("[{name: a}]", "base: pretrain", "base: is given by each entry of bases: (give one or the other)"),
    ("[]", "", "bases: [] is not a non-empty list of mappings"),
])
def test_bad_named_bases_fail_with_one_line(bases, extra, message):
    text = digits_sweep_text(strategies="[random]", compressions="[2]", seeds="[0]", bases=bases)
    with pytest.raises(SpecError) as error:
        parse_spec(text + extra + "\n", origin="tiny.yaml")
    assert str(error.value).startswith(f"tiny.yaml: {message}")
