"""Fixtures for the experiment tests: a migrated MLflow store per test (copied from one template,
since creating a fresh sqlite store costs ~1.5 s), and runs read back."""

import shutil

import pytest


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory):
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(tmp_path, _mlflow_template, monkeypatch):
    """A fresh, already migrated sqlite store in the test's temp dir (artifacts land beside it)."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(_mlflow_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def read_run(mlflow_uri):
    """``read_run(run_id) -> (run, history)``: the run as stored, with each metric's (step, value) list."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)

    def read(run_id: str):
        run = client.get_run(run_id)
        history = {key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
                   for key in run.data.metrics}
        return run, history

    return read
