"""The CUDA paths, on a CUDA machine only (`bench/gpu.sh` runs this file there; here every test is skipped).

Nothing here imports Ray, MLflow or torch-pruning: the GPU bench machine has none of them."""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_this_node_passes_the_doctor_as_a_gpu_node():
    from shrink.experiment.node import node_problems, probe_node

    report = probe_node()
    assert report.cuda_available and len(report.gpus) == torch.cuda.device_count()
    assert node_problems(report, needs_gpu=True) == []


def test_a_trial_step_autocasts_to_bf16_in_channels_last_and_keeps_the_masks():
    from shrink import models, pruning
    from shrink.experiment import FINETUNE_PRESETS
    from shrink.experiment.loop import Compute, make_optimizer, train_epoch
    from shrink.experiment.runtime import AmpMode, amp_mode

    torch.manual_seed(0)
    model = models.create("resnet20", num_classes=10)
    compute = Compute.for_model(model, "cuda")
    expected = amp_mode("cuda", torch.cuda.get_device_capability())  # bf16 from compute capability 8.0 on
    assert (compute.amp, compute.channels_last) == (expected, True) and expected is not AmpMode.OFF
    model = compute.prepare(model)
    masks = pruning.prune(model, "global-magnitude", 4.0)
    optimizer = make_optimizer(model, FINETUNE_PRESETS["cifar"])
    pruning.keep_masked(model, optimizer)
    x = torch.randn(16, 3, 32, 32, device="cuda")
    with compute.autocast():
        assert model(compute.inputs(x)).dtype == torch.bfloat16
    stats = train_epoch(model, optimizer, [(x, torch.randint(0, 10, (16,), device="cuda"))] * 3, compute)
    assert stats.n == 48
    conv = model.get_submodule(next(name for name in masks if name.endswith("weight")).rsplit(".", 1)[0])
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    params = dict(model.named_parameters())
    assert all(int((params[name] != 0).sum()) <= int(mask.sum()) for name, mask in masks.items())


def test_the_cuda_rng_state_is_saved_and_restored_with_a_trials_state():
    from shrink.experiment.checkpoint import restore_rng, rng_state

    torch.cuda.manual_seed(3)
    saved = rng_state("cuda")
    first = torch.rand(4, device="cuda")
    restore_rng(saved, "cuda")
    assert torch.equal(torch.rand(4, device="cuda"), first)


def test_latency_is_timed_on_the_gpu_with_its_name():
    from shrink import models
    from shrink.metrics import latency

    timed = latency(models.create("resnet20", num_classes=10), (3, 32, 32), (1, 8), device="cuda", warmup=2,
                    repeats=5)
    assert timed[1].device == f"cuda: {torch.cuda.get_device_name()}"
    assert 0 < timed[1].median_ms and timed[8].repeats == 5


def test_jpeg_bytes_decode_on_the_gpu_as_on_the_cpu():
    from torchvision.io import decode_jpeg, encode_jpeg

    image = torch.arange(3 * 32 * 32).remainder(256).to(torch.uint8).reshape(3, 32, 32)
    data = encode_jpeg(image)
    on_gpu = decode_jpeg([data, data], device="cuda")
    assert [tuple(im.shape) for im in on_gpu] == [(3, 32, 32)] * 2 and on_gpu[0].is_cuda
    assert (on_gpu[0].cpu().int() - decode_jpeg(data).int()).abs().max() <= 2
