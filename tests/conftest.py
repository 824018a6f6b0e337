"""Shared fixtures: every test gets its own MLflow store and Ray temp dir, never the user's."""

import pytest


@pytest.fixture
def mlflow_uri(tmp_path):
    """A fresh sqlite MLflow tracking URI in the test's temp dir."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Keep caches, MLflow and Ray state out of the user's home and the working directory."""
    monkeypatch.setenv("SHRINK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
