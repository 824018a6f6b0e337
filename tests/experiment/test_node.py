"""What a node offers a trial (`shrink.experiment.node`): each check of `node_problems` on a report built by hand,
the probe and `shrink doctor` on this CPU machine."""

import json
import os
import platform
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from shrink.experiment.node import (GpuReport, NodeCheck, NodeReport, jpeg_engine, node_problems, probe_node, runs_on,
                                    smoke)

ROOT = Path(__file__).resolve().parents[2]
H100 = GpuReport(0, "NVIDIA H100 80GB HBM3", (9, 0), 80 * 2**30, 79 * 2**30, jpeg_decoder=True)
HEALTHY = NodeReport(
    name="gpu-1", python="3.11.7", torch="2.11.0+cu130", torchvision="0.26.0+cu130", torchvision_error=None,
    cuda_build="13.0", driver="580.65.06", nvml_gpus=1, cuda_available=True, cuda_error=None,
    arch_list=("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"), mps=False, cpus=16,
    memory_available_bytes=100 * 2**30, gpus=(H100,), ray_gpus=1.0)
NO_CUDA = {"cuda_available": False, "gpus": (), "arch_list": ()}
TOO_OLD = ("CUDA initialization: The NVIDIA driver on your system is too old (found version 12040). Please update "
           "your GPU driver")


@pytest.mark.parametrize(("change", "problems"), [
    ({}, []),
    ({"torchvision": None, "torchvision_error": "RuntimeError: operator torchvision::nms does not exist"},
     ["torchvision does not import (RuntimeError: operator torchvision::nms does not exist): install the "
      "torchvision release built for torch 2.11.0+cu130"]),
    ({"cuda_build": None, **NO_CUDA},
     ["torch 2.11.0+cu130 is a CPU-only build: install a CUDA build of torch"]),
    ({"driver": "550.54.15", "cuda_error": TOO_OLD, **NO_CUDA},
     ["NVIDIA driver 550.54.15 is older than 580, the least that torch's CUDA 13.0 runs on: upgrade the driver, "
      "or install a torch built for an older CUDA",
      f"CUDA is not available to torch 2.11.0+cu130 (CUDA 13.0) ({TOO_OLD}), though Ray counts 1 GPU here"]),
    ({"driver": None, "nvml_gpus": None, "ray_gpus": 2.0, **NO_CUDA},
     ["CUDA is not available to torch 2.11.0+cu130 (CUDA 13.0), though Ray counts 2 GPUs here"]),
    ({"ray_gpus": None, "nvml_gpus": 8, **NO_CUDA},
     ["CUDA is not available to torch 2.11.0+cu130 (CUDA 13.0), though the driver reports 8 GPUs here"]),
    ({"ray_gpus": 2.0}, ["torch sees 1 of the 2 GPUs counted here: check CUDA_VISIBLE_DEVICES"]),
    ({"gpus": (replace(H100, name="Tesla V100-SXM2-32GB", capability=(7, 0)),)},
     ["GPU 0 (Tesla V100-SXM2-32GB, sm_70): torch 2.11.0+cu130 has no kernels for sm_70 (it has sm_75 sm_80 "
      "sm_86 sm_90 sm_100 sm_120 compute_120): install a torch build that includes sm_70"]),
    ({"gpus": (replace(H100, conv_error="RuntimeError: CUDNN_STATUS_NOT_SUPPORTED"),)},
     ["GPU 0 (NVIDIA H100 80GB HBM3, sm_90): a bf16 channels-last conv forward/backward failed: "
      "RuntimeError: CUDNN_STATUS_NOT_SUPPORTED"]),
    ({"gpus": (replace(H100, decode_error="RuntimeError: nvjpegCreate failed"),)},
     ["GPU 0 (NVIDIA H100 80GB HBM3, sm_90): decode_jpeg on the device failed: RuntimeError: nvjpegCreate failed"]),
])
def test_each_check_names_the_problem_and_its_remedy(change, problems):
    assert node_problems(replace(HEALTHY, **change), needs_gpu=True) == problems


def test_a_cpu_node_and_a_sweep_without_jpegs_ignore_what_they_do_not_use():
    broken = replace(HEALTHY, driver="550.54.15", cuda_error=TOO_OLD, **NO_CUDA)
    assert node_problems(broken, needs_gpu=False) == []
    bad_decoder = replace(HEALTHY, gpus=(replace(H100, decode_error="RuntimeError: nvjpegCreate failed"),))
    assert node_problems(bad_decoder, needs_gpu=True, decodes_jpeg=False) == []


@pytest.mark.parametrize(("capability", "arch_list", "runs"), [
    ((8, 6), ("sm_80",), True),  # a cubin runs on a higher minor of its major
    ((8, 0), ("sm_86",), False),
    ((12, 0), ("sm_90", "compute_90"), True),  # PTX is compiled for newer GPUs
    ((8, 0), ("compute_90",), False),
    ((9, 0), ("sm_90a",), True),  # arch-specific cubins run on their own capability only
    ((10, 0), ("sm_90a", "sm_100"), True),
    ((10, 3), ("sm_90a",), False),
    ((7, 0), ("sm_75", "sm_80"), False),
])
def test_an_arch_list_runs_on_a_capability_as_cuda_loads_kernels(capability, arch_list, runs):
    assert runs_on(capability, arch_list) is runs


def test_a_gpu_node_reads_as_one_block_and_as_json():
    check = NodeCheck("gpu-1", HEALTHY, ())
    assert check.describe() == (
        "node gpu-1\n"
        "  python 3.11.7, torch 2.11.0+cu130, torchvision 0.26.0+cu130, CUDA build 13.0\n"
        "  NVIDIA driver 580.65.06; GPUs: 1 per NVML, 1 per Ray\n"
        "  16 CPUs, 100.0 GiB memory available, MPS no\n"
        "  CUDA available, arch list sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 compute_120\n"
        "  GPU 0: NVIDIA H100 80GB HBM3, sm_90, bf16 yes, hardware JPEG decoder yes (decode auto: gpu), 79.0 GiB "
        "free of 80.0 GiB, bf16 conv + decode_jpeg ok\n"
        "  ok")
    as_json = json.loads(json.dumps(check.to_json()))
    assert as_json["problems"] == [] and as_json["report"]["gpus"][0]["capability"] == [9, 0]
    assert NodeCheck("10.0.0.5 (3f2a9c1b)", None, ("the probe failed: X",)).describe() == (
        "node 10.0.0.5 (3f2a9c1b)\n  problem: the probe failed: X")


def test_the_probe_on_this_cpu_machine_and_the_smoke_test_on_cpu():
    report = probe_node(name="here", ray_gpus=0.0)
    assert (report.name, report.torch, report.cuda_available, report.gpus, report.ray_gpus) == (
        "here", torch.__version__, False, (), 0.0)
    assert report.cpus == len(os.sched_getaffinity(0)) and report.cuda_build == torch.version.cuda
    assert smoke("cpu") == (None, None)
    assert smoke("meta")[0] == "RuntimeError: User specified an unsupported autocast device_type 'meta'"
    assert jpeg_engine("cpu") is jpeg_engine("cuda") is None  # no CUDA device here: unknown, so auto decodes on CPU


def test_doctor_here_runs_without_ray_mlflow_or_yaml_and_says_cpu_only():
    """What `bench/gpu.sh` runs on a GPU machine that has none of them installed."""
    program = ("import sys; sys.modules.update(ray=None, mlflow=None, yaml=None); sys.argv = ['shrink', 'doctor']; "
               "import runpy; runpy.run_module('shrink', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("node ")
    assert lines[1].startswith(f"  python {platform.python_version()}, torch {torch.__version__}, ")
    assert "  CUDA not available; CPU only" in lines and lines[-3:] == ["  ok", "", "1 node, no problems"]


def test_doctor_json_here_and_the_exclusive_options():
    from click.testing import CliRunner

    from shrink.cli import main

    result = CliRunner().invoke(main, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    [node] = json.loads(result.output)
    assert node["problems"] == [] and node["report"]["torch"] == torch.__version__ and node["report"]["gpus"] == []
    both = CliRunner().invoke(main, ["doctor", "--address", "auto", "--cluster", __file__])
    assert both.exit_code == 2 and "--cluster and --address exclude each other" in both.output
