"""Measured latency on CPU, against modules whose forward time is known (they sleep)."""

import time

import pytest
import torch
from torch import nn

from shrink.metrics import Latency, compare_latency, latency, measured_speedup
from shrink.metrics.latency import same_device


class Sleeper(nn.Module):
    """Sleeps a fixed time per forward pass; one parameter so the module has a device."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        time.sleep(self.seconds)
        return x * self.scale


def test_median_and_spread_per_batch_size_with_the_device():
    model = Sleeper(0.01).train()
    timings = latency(model, (3, 8, 8), batch_sizes=(1, 4), warmup=1, repeats=5)
    assert sorted(timings) == [1, 4]
    for batch, t in timings.items():
        assert (t.batch_size, t.repeats) == (batch, 5)
        assert 10.0 <= t.median_ms < 30.0
        assert 0.0 <= t.iqr_ms < 20.0
        assert t.device.startswith("cpu: ") and t.device.endswith(f"({torch.get_num_threads()} threads)")
    assert model.training  # the mode is restored


def test_compared_models_are_interleaved_and_the_speedup_is_the_ratio_of_medians():
    order = []
    slow, fast = Sleeper(0.02), Sleeper(0.01)
    slow.register_forward_hook(lambda *_: order.append("slow"))
    fast.register_forward_hook(lambda *_: order.append("fast"))
    timed = compare_latency({"dense": slow, "pruned": fast}, (4,), batch_sizes=(2,), warmup=1, repeats=5)
    assert order == ["slow", "fast"] * 6
    speedup = measured_speedup(timed["dense"], timed["pruned"])
    assert list(speedup) == [2]
    assert speedup[2] == timed["dense"][2].median_ms / timed["pruned"][2].median_ms
    assert 1.5 < speedup[2] < 2.05


def test_speedup_refuses_different_devices_or_batch_sizes():
    a = {1: Latency("cpu: x (2 threads)", 1, 2.0, 0.1, 5)}
    with pytest.raises(ValueError, match="different devices"):
        measured_speedup(a, {1: Latency("cuda: y", 1, 1.0, 0.1, 5)})
    with pytest.raises(ValueError, match=r"batch sizes differ: dense \[1\], pruned \[64\]"):
        measured_speedup(a, {64: Latency("cpu: x (2 threads)", 64, 1.0, 0.1, 5)})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (3, 0, 8)}, "input_shape must be positive ints"),
        ({"batch_sizes": ()}, "batch_sizes must be positive ints"),
        ({"repeats": 2}, "repeats >= 3"),
        ({"device": "cuda"}, "CUDA is not available"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    if kwargs.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    args = {"input_shape": (3, 8, 8), **kwargs}
    with pytest.raises(ValueError, match=message):
        latency(Sleeper(0.0), **args)


def test_devices_are_the_same_by_type_and_index_an_indexless_gpu_being_the_current_one():
    cpu, gpu, gpu0, gpu1 = (torch.device(d) for d in ("cpu", "cuda", "cuda:0", "cuda:1"))
    assert same_device(cpu, torch.device("cpu")) and same_device(cpu, torch.device("cpu:0"))
    assert same_device(gpu, gpu0, current=0) and same_device(gpu1, gpu, current=1)
    assert not same_device(gpu, gpu0, current=1)
    assert not same_device(gpu0, gpu1) and not same_device(cpu, gpu0)


def test_a_model_on_the_timing_device_is_timed_itself_not_a_copy():
    timed = []
    model = Sleeper(0.0)
    model.register_forward_hook(lambda module, *_: timed.append(module))
    latency(model, (4,), batch_sizes=(1,), device="cpu:0", warmup=0, repeats=3)
    assert len(timed) == 3 and all(module is model for module in timed)
