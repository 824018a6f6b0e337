"""TrialConfig: presets per family, strict parsing, flattening for MLflow."""

import pytest

from shrink.datasets import Decode, resolve_decode
from shrink.experiment import FINETUNE_PRESETS, ConfigError, FinetuneConfig, TrialConfig

BASE = {"model": "small-mlp", "dataset": "digits", "strategy": "global-magnitude", "compression": 4}


def test_presets_are_the_papers():
    cifar, imagenet = FINETUNE_PRESETS["cifar"], FINETUNE_PRESETS["imagenet"]
    assert (cifar.optimizer, cifar.lr, cifar.batch_size, cifar.epochs) == ("adam", 3e-4, 64, 30)
    assert (imagenet.optimizer, imagenet.lr, imagenet.batch_size, imagenet.epochs) == ("sgd", 1e-3, 256, 20)
    assert (imagenet.momentum, imagenet.nesterov) == (0.9, True)
    assert FINETUNE_PRESETS["mnist"] == FINETUNE_PRESETS["digits"] == cifar


def test_unset_finetune_fields_take_the_family_preset_and_set_ones_win():
    done = FinetuneConfig(lr=0.01, epochs=2).resolved("imagenet")
    assert done == FinetuneConfig("sgd", 0.01, 256, 2, 0.9, True, 0.0, 5, 0.0, "continue")


def test_from_dict_round_trips_and_flattens_with_dots():
    config = TrialConfig.from_dict({**BASE, "finetune": {"lr": 0.5, "epochs": 3}, "seed": 7})
    assert TrialConfig.from_dict(config.to_dict()) == config
    flat = config.flat()
    assert flat["finetune.lr"] == 0.5 and flat["finetune.epochs"] == 3 and flat["seed"] == 7
    assert "finetune" not in flat
    assert len(flat) == 32 + 10  # 32 top-level fields besides finetune (base, base_name, workers, decode, compile,
    # measure_latency, latency_dir, reference_run, control_for included), 10 finetune fields
    assert flat["base"] == "pretrain"
    assert (flat["schedule"], flat["schedule_rounds"], flat["schedule_every"], flat["finetune.variant"]) == (
        "one-shot", 1, 0, None)
    assert flat["control_for"] == "[]"
    # A sweep's shared dense control names its strategies: a tuple, a JSON list in MLflow (and from JSON).
    control = TrialConfig.from_dict({**BASE, "compression": 1, "control_for": ["global-magnitude", "random"]})
    assert control.control_for == ("global-magnitude", "random")
    assert TrialConfig.from_dict(control.to_dict()) == control
    assert control.flat()["control_for"] == '["global-magnitude", "random"]'


def test_finetune_may_name_the_variant_alone():
    config = TrialConfig.from_dict({**BASE, "finetune": "lr-rewind", "schedule": "iterative", "schedule_rounds": 3})
    assert (config.finetune.variant, config.finetune.lr) == ("lr-rewind", None)
    assert config.resolved().finetune.variant == "lr-rewind"
    assert TrialConfig.from_dict(BASE).resolved().finetune.variant == "continue"


@pytest.mark.parametrize("values, message", [
    ({**BASE, "lr": 0.1}, "unknown trial config key 'lr'; allowed: model, dataset"),
    ({**BASE, "finetune": {"learning_rate": 0.1}}, "unknown trial config key 'finetune.learning_rate'"),
    ({"model": "small-mlp"}, "trial config is missing dataset, strategy, compression"),
    ({**BASE, "compression": 0.5}, "compression must be >= 1, got 0.5"),
    ({**BASE, "compression": "4"}, "TrialConfig.compression must be float, got '4'"),
    ({**BASE, "seed": True}, "TrialConfig.seed must be int, got True"),
    ({**BASE, "device": "gpu"}, "device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'"),
    ({**BASE, "decode": "nvjpeg"}, "decode must be one of auto, cpu, gpu, got 'nvjpeg'"),
    ({**BASE, "val_fraction": 1.0}, "val_fraction must be a number strictly between 0 and 1, got 1.0"),
    ({**BASE, "base_sha256": "ab"}, "base_sha256 must be 64 lowercase hex digits"),
    ({**BASE, "finetune": {"optimizer": "rmsprop"}}, "finetune.optimizer must be one of adam, sgd"),
    ({**BASE, "finetune": {"patience": 0}}, "finetune.patience must be >= 1, got 0"),
    ({**BASE, "finetune": "rewind"}, "finetune.variant must be one of continue, lr-rewind, weight-rewind, scratch"),
    ({**BASE, "schedule": "gradual", "schedule_rounds": 4}, "'every' (steps between events) is for schedule 'gradual'"),
    ({**BASE, "schedule": "iterative"}, "schedule 'iterative' needs rounds >= 2, got 1"),
    ({**BASE, "control_for": ["random"]}, "control_for names the strategies of a dense control, at compression 1, got 4"),
    ({**BASE, "compression": 1, "control_for": "random"}, "TrialConfig.control_for must be a tuple of names, got 'random'"),
])
def test_bad_values_fail_with_one_line_that_names_the_field(values, message):
    with pytest.raises(ConfigError) as caught:
        TrialConfig.from_dict(values)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_momentum_with_adam_is_rejected_when_resolved():
    with pytest.raises(ConfigError, match="apply to optimizer 'sgd' only"):
        FinetuneConfig(momentum=0.9).resolved("cifar")


@pytest.mark.parametrize("choice, device_type, engine, decode", [
    ("auto", "cuda", True, Decode.GPU),  # A100, H100: the hardware JPEG engine decodes
    ("auto", "cuda", False, Decode.CPU),  # A10G, L4...: nvJPEG would decode Huffman on one thread
    ("auto", "cuda", None, Decode.CPU),  # unknown (no NVML, an old driver): the CPU workers
    ("auto", "cpu", None, Decode.CPU),
    ("cpu", "cuda", True, Decode.CPU),
    ("cpu", "cpu", None, Decode.CPU),
    ("gpu", "cuda", False, Decode.GPU),  # asked for: nvJPEG without the engine
    ("gpu", "cuda", None, Decode.GPU),
])
def test_auto_decodes_on_the_gpu_only_where_it_has_a_jpeg_engine(choice, device_type, engine, decode):
    assert resolve_decode(choice, device_type, engine) is decode


def test_decode_gpu_off_cuda_and_unknown_choices_are_one_line_errors():
    with pytest.raises(ValueError, match="^decode 'gpu' needs a CUDA device, not 'cpu'; use 'cpu' or 'auto'$"):
        resolve_decode("gpu", "cpu", None)
    with pytest.raises(ValueError, match="^decode must be one of auto, cpu, gpu, got 'GPU'$"):
        resolve_decode("GPU", "cuda", True)
    assert TrialConfig.from_dict(BASE).resolved().decode == "cpu"  # what a CPU trial records (shrink.decode)
    with pytest.raises(ConfigError, match="^decode 'gpu' needs a CUDA device") as caught:
        TrialConfig.from_dict({**BASE, "decode": "gpu", "device": "cpu"}).resolved()
    assert caught.value.key == "decode"
