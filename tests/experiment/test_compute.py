"""How a run computes: the mixed precision chosen per device, fp16's loss scaling in the training step, and torch's
settings per device."""

import dataclasses
import os

import pytest
import torch

from shrink import models
from shrink.experiment.loop import Compute, eval_batch_size, make_optimizer, train_epoch
from shrink.experiment.recipes import RECIPES
from shrink.experiment import TrialConfig
from shrink.experiment.errors import ConfigError
from shrink.experiment.preflight import preflight
from shrink.experiment.runtime import (COMPILE_ENV, AmpMode, amp_mode, compile_default, compile_mode, configure_torch,
                                       prepare_cublas)


@pytest.mark.parametrize("device_type, capability, mode", [
    ("cpu", None, "bf16"),
    ("cuda", (7, 0), "fp16"),  # V100: bf16 emulated
    ("cuda", (7, 5), "fp16"),  # T4
    ("cuda", (8, 0), "bf16"),  # A100
    ("cuda", (8, 9), "bf16"),  # L4, L40S
    ("cuda", (9, 0), "bf16"),  # H100, H200
])
def test_amp_is_bf16_on_cpus_and_from_compute_capability_8_else_fp16(device_type, capability, mode):
    assert amp_mode(device_type, capability) == mode


def test_steps_compile_by_default_on_cuda_only_with_cuda_graphs_there_and_nchw_convolutions_on_a_cpu(monkeypatch):
    monkeypatch.delenv(COMPILE_ENV, raising=False)  # the rule itself, also in the suite's compiled pass
    assert [compile_default(device) for device in ("cpu", "cuda", "cuda:1")] == [False, True, True]
    assert [compile_mode(kind) for kind in ("cpu", "cuda")] == ["default", "reduce-overhead"]
    cnn = models.create("small-cnn", num_classes=10, input_shape=(1, 8, 8))
    computes = Compute.for_model(cnn, "cpu"), Compute.for_model(cnn, "cpu", compile=True)
    assert [(c.compile, c.channels_last) for c in computes] == [(False, True), (True, False)]
    config = TrialConfig(model="small-mlp", dataset="digits", strategy="random", compression=2, device="cpu")
    assert [c.resolved().compile for c in (config, dataclasses.replace(config, compile=True))] == [False, True]


def test_shrink_compile_overrides_the_default_rule_but_not_a_config_and_a_bad_value_stops_the_preflight(monkeypatch):
    config = TrialConfig(model="small-mlp", dataset="digits", strategy="random", compression=2, device="cpu")
    monkeypatch.setenv(COMPILE_ENV, "1")
    assert [compile_default(device) for device in ("cpu", "cuda")] == [True, True]
    assert [c.resolved().compile for c in (config, dataclasses.replace(config, compile=False))] == [True, False]
    monkeypatch.setenv(COMPILE_ENV, "0")
    assert [compile_default(device) for device in ("cpu", "cuda")] == [False, False]
    monkeypatch.setenv(COMPILE_ENV, "")
    assert [compile_default(device) for device in ("cpu", "cuda")] == [False, True]
    monkeypatch.setenv(COMPILE_ENV, "yes")
    message = "SHRINK_COMPILE must be 1 (compile), 0 (do not) or unset (the device's default), not 'yes'"
    for check in (lambda: preflight(config), config.resolved):
        with pytest.raises(ConfigError) as error:
            check()
        assert str(error.value) == message
    preflight(dataclasses.replace(config, compile=True))  # a config's own setting does not read the variable


def test_fp16_skips_a_step_whose_scaled_gradients_overflow_and_lowers_the_scale():
    torch.manual_seed(0)
    x = torch.randn(20, 64, 1, 8, 8)
    batches = list(zip(x, x.flatten(2)[:, :, :10].argmax(-1), strict=True))  # 20 batches of 64: learnable labels
    model = models.create("small-mlp", num_classes=10, input_shape=(1, 8, 8))
    compute = Compute("cpu", AmpMode.FP16)
    optimizer = make_optimizer(model, RECIPES["digits"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24)  # too much for fp16's range (65,504): overflows
    train_epoch(model, optimizer, batches[:1], compute, scaler=scaler)
    assert scaler.get_scale() == 2.0**23
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # skipped, not applied as inf

    first = train_epoch(model, optimizer, batches, compute, scaler=scaler)
    again = train_epoch(model, optimizer, batches, compute, scaler=scaler)
    assert first.n == 20 * 64 and 0 < again.loss < first.loss
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_autocast_and_the_loss_scaler_follow_the_mode():
    for mode, dtype, scaled in ((AmpMode.BF16, torch.bfloat16, False), (AmpMode.FP16, torch.float16, True)):
        compute = Compute("cpu", mode)
        with compute.autocast():
            assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == dtype
        assert compute.grad_scaler().is_enabled() == scaled
    with Compute("cpu").autocast():
        assert not torch.is_autocast_enabled("cpu")
    assert not Compute("cpu").grad_scaler().is_enabled()


def test_cublas_is_asked_for_deterministic_workspaces_on_cuda_only(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    prepare_cublas("cpu", deterministic=True)
    prepare_cublas("cuda", deterministic=False)
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    prepare_cublas("cuda:1", deterministic=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the environment's own choice stays
    prepare_cublas("cuda", deterministic=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_torch_settings_per_device(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    threads = torch.get_num_threads()
    configure_torch("cuda", threads + 1, deterministic=False)  # CUDA: threads untouched, cuDNN benchmarks
    assert (torch.get_num_threads(), torch.backends.cudnn.benchmark) == (threads, True)
    configure_torch("cuda", None, deterministic=True)  # deterministic: no benchmarking, deterministic kernels
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == (False, True)
    assert torch.are_deterministic_algorithms_enabled()
    configure_torch("cpu", 1, deterministic=False)
    assert (torch.get_num_threads(), torch.backends.cudnn.benchmark) == (1, False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_evaluation_batches_are_large_and_at_least_256_for_imagenet():
    assert [eval_batch_size(shape) for shape in ((3, 224, 224), (3, 32, 32), (1, 28, 28), (1, 8, 8))] == [
        256, 2730, 4096, 4096]
