"""Fixtures for the sweep tests: a private Ray temp dir whose leftover processes are ended by PID
(never ``ray stop``, which would end every Ray process on the machine)."""

import shutil
import tempfile

import pytest

import shrink.orchestrator  # noqa: F401  (sets Ray's environment before Ray is imported)
from helpers import end_processes_with_env


@pytest.fixture(scope="module")
def ray_tmpdir():
    """A private, short RAY_TMPDIR (Ray's socket paths must stay under 107 characters) for a module."""
    folder = tempfile.mkdtemp(prefix="shrink-ray-", dir="/tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", folder)
        # Ray Train's controller takes a worker's report every 2 s (a queue of one), so the tests' trials,
        # whose epochs take 0.1 s, would wait 2 s an epoch; its workers inherit this from the Ray started here.
        patch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
        yield folder
    end_processes_with_env("RAY_TMPDIR", folder)
    shutil.rmtree(folder, ignore_errors=True)
