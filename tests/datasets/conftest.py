"""Dataset tests never download and never look in the user's own data or cache directories."""

import pytest


@pytest.fixture(autouse=True)
def _offline_data_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("SHRINK_NO_DOWNLOAD", "1")
    monkeypatch.delenv("SHRINK_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
