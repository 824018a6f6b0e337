"""Fixtures of the report tests: MLflow stores holding hand-written sweeps (see report_sweeps).

Creating a sqlite store runs MLflow's schema migration (seconds), so it runs once per session
and every store is a copy of that empty one.
"""

import shutil

import pytest
from mlflow import MlflowClient
from report_sweeps import small_sweep, trial, write_sweep


@pytest.fixture(scope="session")
def make_store(tmp_path_factory):
    """A factory of fresh sqlite store URIs, each in its own temporary directory."""
    template = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()  # creates the schema

    def make() -> str:
        path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    return make


@pytest.fixture(scope="module")
def store(make_store):
    """One store per test module: an older sweep ``old`` and the newer ``small``."""
    uri = make_store()
    write_sweep(uri, "old", [trial("random", 2, 0, 0.5)])
    write_sweep(uri, "small", small_sweep())
    return uri
