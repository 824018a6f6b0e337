"""Fixtures for the experiment tests: a migrated MLflow store per test (copied from one template,
since creating a fresh sqlite store costs ~1.5 s), and runs read back."""

import shutil

import pytest


@pytest.fixture(autouse=True)
def _restore_torch_settings():
    """Trials set torch's thread count and determinism for the process; give the next test them back."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        torch.use_deterministic_algorithms(deterministic)


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


@pytest.fixture(scope="session")
def digits_base(tmp_path_factory):
    """small-mlp pretrained on digits for 5 epochs, once per session, in its own cache."""
    from shrink.experiment import pretrain

    return pretrain("small-mlp", "digits", epochs=5, cache_dir=tmp_path_factory.mktemp("bases"), threads=1,
                    progress=None)


@pytest.fixture
def digits_trial(digits_base, mlflow_uri):
    """``digits_trial(**overrides)``: a TrialConfig of small-mlp on digits pruned 4x, 2 epochs, 1 thread
    (a tiny model gains nothing from more, and loses a lot when other processes share the cores)."""
    from shrink.experiment import TrialConfig

    def make(**overrides):
        finetune = {"epochs": 2, **overrides.pop("finetune", {})}
        return TrialConfig.from_dict({
            "model": "small-mlp", "dataset": "digits", "strategy": "global-magnitude", "compression": 4.0,
            "base_path": str(digits_base.path), "tracking_uri": mlflow_uri, "finetune": finetune, "threads": 1,
            **overrides,
        })

    return make


@pytest.fixture
def cifar_root(tmp_path):
    """Tiny CIFAR-10 files (5 x 40 training images, 50 test images of noise) in the pickle format."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    root = tmp_path / "cifar10"
    root.mkdir()
    for name, n in [*((f"data_batch_{i}", 40) for i in range(1, 6)), ("test_batch", 50)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(10)) * (n // 10)}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    return root
