"""DirectoryCheckpointer: round trip, replacement, nothing half-written left behind."""

import torch

from shrink.experiment import DirectoryCheckpointer


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
