"""`bench/gpu.sh` on a machine without CUDA: one line, exit 0, in seconds; the GPU peaks it compares with."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_bench_without_cuda_says_so_in_one_line_and_exits_0():
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"bench/gpu.sh: no CUDA device (torch {torch.__version__}, CUDA available: False); "
                           "nothing to measure\n")


def test_the_peak_table_knows_the_names_torch_gives_hopper_gpus():
    spec = importlib.util.spec_from_file_location("bench_ddp", ROOT / "bench" / "ddp.py")
    ddp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ddp)
    names = ["NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200", "NVIDIA H200 NVL",
             "NVIDIA A100-SXM4-80GB", "NVIDIA A10", "Tesla T4"]
    assert [ddp.peak_bf16_tflops(name) for name in names] == [989.4, 756.5, 835.5, 989.4, 835.5, 312.0, 125.0, None]


def test_what_the_gpu_bench_calls_runs_without_ray_mlflow_yaml_or_torch_pruning():
    """The GPU bench machine has none of them: weight strategies prune there, the loop and latency import."""
    program = ("import sys; sys.modules.update(ray=None, mlflow=None, yaml=None, torch_pruning=None)\n"
               "from shrink import datasets, models, pruning\n"
               "from shrink.experiment import FINETUNE_PRESETS\n"
               "from shrink.experiment.loop import Compute, make_optimizer, train_epoch\n"
               "from shrink.experiment.checkpoint import rng_state\n"
               "from shrink.metrics import compare_latency\n"
               "masks = pruning.prune(models.create('small-mlp', num_classes=10), 'global-magnitude', 4.0)\n"
               "print(sum(int(m.sum()) for m in masks.values()))\n")
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    # small-mlp on 28x28 inputs: 79,510 parameters, 19,878 of them left at 4x; the classifier (1,010) and
    # fc1's bias (100) are not pruned, so fc1.weight keeps 19,878 - 1,110
    assert done.stdout == "18768\n"
