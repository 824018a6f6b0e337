"""Pruning events of each schedule, derived by hand; every schedule ends exactly at the target."""

import pytest

from shrink.pruning.schedules import Schedule


def test_one_shot_prunes_once_before_the_first_step():
    assert Schedule().events(4.0, epochs=10, steps_per_epoch=5) == [(0, 4.0)]


def test_iterative_rounds_share_the_epochs_on_a_geometric_path():
    events = Schedule("iterative", rounds=3).events(8.0, epochs=10, steps_per_epoch=5)
    # Rounds start at epochs 0, 3, 6 (10 // 3 per round); 8 ** (1/3) = 2, 8 ** (2/3) = 4.
    assert [step for step, _ in events] == [0, 15, 30]
    assert [ratio for _, ratio in events] == pytest.approx([2.0, 4.0, 8.0], rel=1e-12)
    assert events[-1][1] == 8.0


def test_gradual_follows_the_cubic_curve_every_k_steps():
    events = Schedule("gradual", rounds=4, every=7).events(16.0, epochs=10, steps_per_epoch=5)
    assert [step for step, _ in events] == [0, 7, 14, 21]
    # sparsity 15/16 x (1 - (1 - j/4)^3): 555/1024, 945/1024 x 15/16 ..., compression 1 / (1 - s).
    expected = [1 / (1 - 15 / 16 * (1 - (1 - j / 4) ** 3)) for j in (1, 2, 3)]
    assert [ratio for _, ratio in events[:3]] == pytest.approx(expected, rel=1e-12)
    assert expected[0] == pytest.approx(1024 / 469)
    assert events[-1] == (21, 16.0)


@pytest.mark.parametrize("compression", [1.0, 1.7, 3.0, 64.0])
@pytest.mark.parametrize("schedule", [Schedule(), Schedule("iterative", 5), Schedule("gradual", 6, 3)])
def test_every_schedule_ends_exactly_at_the_target_and_only_ever_compresses_more(schedule, compression):
    events = schedule.events(compression, epochs=6, steps_per_epoch=4)
    assert events[-1][1] == compression
    ratios = [ratio for _, ratio in events]
    steps = [step for step, _ in events]
    assert ratios == sorted(ratios) and steps == sorted(steps) and len(set(steps)) == len(steps)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Schedule("cyclic"), "unknown schedule 'cyclic'; known: one-shot, iterative, gradual"),
        (lambda: Schedule("iterative", rounds=1), "needs rounds >= 2"),
        (lambda: Schedule("gradual", rounds=3), "'every'"),
        (lambda: Schedule("iterative", rounds=3, every=5), "'every'"),
        (lambda: Schedule("one-shot", rounds=2), "takes neither rounds nor every"),
    ],
)
def test_bad_schedules_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_events_that_do_not_fit_in_the_fine_tuning_are_refused():
    with pytest.raises(ValueError, match="end at step 40, but fine-tuning has 40 steps"):
        Schedule("gradual", rounds=5, every=10).events(4.0, epochs=4, steps_per_epoch=10)
    with pytest.raises(ValueError, match="4 rounds need at least 4 fine-tuning epochs, got 3"):
        Schedule("iterative", rounds=4).events(4.0, epochs=3, steps_per_epoch=10)
