"""DirectoryCheckpointer: round trip, replacement, nothing half-written left behind; the random state saved
with it."""

import torch

from shrink.experiment import DirectoryCheckpointer
from shrink.experiment.checkpoint import restore_rng, rng_state


def test_saves_loads_and_replaces_state_atomically(tmp_path):
    checkpointer = DirectoryCheckpointer(tmp_path / "trial")
    assert checkpointer.load() is None
    checkpointer.save({"epoch": 1, "model": {"w": torch.arange(3.0)}, "run_id": "abc"})
    checkpointer.save({"epoch": 2, "model": {"w": torch.tensor([4.0, 5.0])}, "run_id": "abc"})
    state = checkpointer.load()
    assert state["epoch"] == 2 and state["run_id"] == "abc"
    assert state["model"]["w"].tolist() == [4.0, 5.0]
    assert sorted(p.name for p in (tmp_path / "trial").iterdir()) == ["trial.pt"]
    # A later process (a resumed trial) finds the same state in the same folder.
    again = DirectoryCheckpointer(tmp_path / "trial").load()
    assert (again["epoch"], again["model"]["w"].tolist()) == (2, [4.0, 5.0])


def test_a_saved_random_state_restored_gives_the_draws_that_followed_the_save(tmp_path):
    checkpointer = DirectoryCheckpointer(tmp_path / "trial")
    torch.manual_seed(3)
    torch.rand(7)
    checkpointer.save({"rng": rng_state("cpu")})
    following = torch.rand(5)
    torch.manual_seed(4)  # another trial's draws in between
    restore_rng(checkpointer.load()["rng"], "cpu")
    assert torch.equal(torch.rand(5), following)


def test_a_gpu_state_in_a_checkpoint_is_left_out_when_a_cpu_trial_resumes_it():
    torch.manual_seed(5)
    saved = {**rng_state("cpu"), "cuda": torch.zeros(16, dtype=torch.uint8)}  # the CPU has no GPU generator
    following = torch.rand(3)
    restore_rng(saved, "cpu")
    assert list(rng_state("cpu")) == ["cpu"] and torch.equal(torch.rand(3), following)
