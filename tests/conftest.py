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


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty ``$TORCH_HOME``; returns its ``hub/checkpoints``, where torchvision caches published weights
    (``helpers.fake_published_weights`` writes there)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def offline(monkeypatch):
    """Downloads disabled (``SHRINK_NO_DOWNLOAD``): a test that would fetch fails instead."""
    monkeypatch.setenv("SHRINK_NO_DOWNLOAD", "1")
