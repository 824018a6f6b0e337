"""The model the training benchmarks time: a CIFAR ResNet pruned 4x by global magnitude, on the trial's
compute defaults, with the CIFAR fine-tuning optimizer and its masks kept exact."""


def pruned_cifar_resnet(name: str, device: str, seed: int = 0):
    """``(model, optimizer, compute)``: ``name`` (``resnet20``, ``resnet56``) seeded with ``seed``, as
    ``shrink.experiment.loop.Compute.for_model`` prepares it on ``device``, pruned 4x."""
    import torch

    from shrink import models, pruning
    from shrink.experiment import FINETUNE_PRESETS
    from shrink.experiment.loop import Compute, make_optimizer

    torch.manual_seed(seed)
    model = models.create(name, num_classes=10)
    compute = Compute.for_model(model, device)
    model = compute.prepare(model)
    pruning.prune(model, "global-magnitude", 4.0)
    optimizer = make_optimizer(model, FINETUNE_PRESETS["cifar"])
    pruning.keep_masked(model, optimizer)
    return model, optimizer, compute
