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
