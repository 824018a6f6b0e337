"""Schedule events fire between optimizer steps as the batches are drawn, also after a resume."""

from shrink.experiment.scheduling import ScheduledPruning


def run(events, epochs, steps_per_epoch=5, epochs_done=0):
    log = []
    prune = lambda c: log.append(("prune", c)) or {"masks": c}  # noqa: E731
    scheduled = ScheduledPruning(events, prune, steps_per_epoch, epochs_done, {"masks": "initial"})
    reached = []
    for epoch in range(epochs_done + 1, epochs + 1):
        for batch in scheduled.batches(range(steps_per_epoch), epoch):
            log.append(("step", (epoch - 1) * steps_per_epoch + batch))
        reached.append(scheduled.reached_target)
    return log, reached, scheduled.masks


def test_events_after_the_first_fire_before_their_step():
    log, reached, masks = run([(0, 2.0), (3, 4.0), (7, 8.0)], epochs=3)
    steps = [entry for entry in log if entry[0] == "prune"]
    assert steps == [("prune", 4.0), ("prune", 8.0)]  # step 0 is the trial's first pruning
    assert log.index(("prune", 4.0)) == log.index(("step", 3)) - 1
    assert log.index(("prune", 8.0)) == log.index(("step", 7)) - 1
    assert reached == [False, True, True]
    assert masks == {"masks": 8.0}


def test_a_resumed_trial_keeps_only_the_events_from_its_next_step():
    log, reached, _ = run([(0, 2.0), (3, 4.0), (5, 8.0)], epochs=2, epochs_done=1)
    assert [entry for entry in log if entry[0] == "prune"] == [("prune", 8.0)]
    assert log[0] == ("prune", 8.0) and log[1] == ("step", 5)
    assert reached == [True]


def test_one_shot_has_nothing_left_to_fire():
    log, reached, masks = run([(0, 4.0)], epochs=1)
    assert [entry for entry in log if entry[0] == "prune"] == [] and reached == [True] and masks == {"masks": "initial"}
