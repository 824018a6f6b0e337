"""Fixtures for the sweep tests: a private Ray temp dir whose leftover processes are ended by PID
(never ``ray stop``, which would end every Ray process on the machine)."""

import shutil
import tempfile

import pytest

import shrink.orchestrator  # noqa: F401  (sets Ray's environment before Ray is imported)
from sweep_testing import end_processes_with_env


@pytest.fixture(scope="module")
def ray_tmpdir():
    """A private, short RAY_TMPDIR (Ray's socket paths must stay under 107 characters) for a module."""
    folder = tempfile.mkdtemp(prefix="shrink-ray-", dir="/tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", folder)
        yield folder
    end_processes_with_env("RAY_TMPDIR", folder)
    shutil.rmtree(folder, ignore_errors=True)
