"""bench/ddp.py's table of GPU peaks, against the names torch reports for each card."""

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("bench_ddp", Path(__file__).parents[1] / "bench" / "ddp.py")
ddp = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(ddp)


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.4),  # SXM5: its name carries no form factor
    ("NVIDIA H100 PCIe", 756.5),
    ("NVIDIA H100 NVL", 835.5),
    ("NVIDIA H200", 989.4),
    ("NVIDIA GH200 480GB", 989.4),
    ("NVIDIA A100-SXM4-80GB", 312.0),
    ("NVIDIA GeForce RTX 4090", None),
])
def test_each_gpu_name_finds_its_own_peak(name, peak):
    assert ddp.peak_tflops(name) == peak
