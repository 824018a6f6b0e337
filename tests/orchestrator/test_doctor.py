"""`shrink doctor --address` and the GPU preflight of a sweep, on a local cluster whose worker node has a GPU
that Ray counts and torch cannot reach (this machine has none): the failure the preflight exists for."""

import re

import pytest
import torch
from click.testing import CliRunner

from shrink.cli import main
from helpers import digits_sweep
from sweep_testing import local_cluster

NO_CUDA = (rf"CUDA is not available to torch {re.escape(torch.__version__)} \(CUDA {torch.version.cuda}\), "
           "though Ray counts 1 GPU here")
NODE = r"node \d+\.\d+\.\d+\.\d+ \([0-9a-f]{8}\)"


@pytest.fixture(scope="module")
def cluster(ray_tmpdir):
    with local_cluster(cpus_per_node=1, nodes=1, gpus_per_node=1) as cluster:
        yield cluster


def test_doctor_prints_one_block_per_node_and_names_the_gpu_node_torch_cannot_use(cluster):
    import ray

    result = CliRunner().invoke(main, ["doctor", "--address", cluster.address])
    assert result.exit_code == 1, result.output
    blocks = result.output.strip().split("\n\n")
    assert len(blocks) == 3 and blocks[-1] == "2 nodes, 1 with problems"
    head, gpu_node = sorted(blocks[:2], key=lambda block: "problem:" in block)
    assert re.fullmatch(rf"{NODE}\n.*; GPUs: 0 per Ray\n.*\n  CUDA not available; CPU only\n  ok", head, re.S), head
    assert re.search(rf"^  problem: {NO_CUDA}$", gpu_node, re.M), gpu_node
    assert not ray.is_initialized()


def test_a_gpu_sweep_is_refused_by_the_preflight_before_anything_starts(cluster, tmp_path):
    path = digits_sweep(tmp_path, resources="{cpus: 1, gpus: 1}")
    result = CliRunner().invoke(main, ["sweep", str(path), "--address", cluster.address])
    assert result.exit_code == 2, result.output
    assert re.fullmatch(rf"Error: GPU preflight: {NODE}: {NO_CUDA}\n", result.output), result.output
    # Nothing started: no sweep state, no MLflow store (the probe's torch may make the empty inductor cache
    # folder a cluster sweep names, <storage>/inductor-cache: a cache, not the sweep's state).
    assert not (tmp_path / "ray" / "tiny").exists() and not (tmp_path / "mlflow.db").exists()
    assert [folder.name for folder in (tmp_path / "ray").glob("*")] in ([], ["inductor-cache"])
