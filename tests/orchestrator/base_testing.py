"""Helpers for the base tests: a tiny ImageNet tree that published weights fit, and torchvision's
cached weights file stood in for by random values of the right shapes."""

from pathlib import Path

import torch
from PIL import Image

RESNET18_FILE = "resnet18-f37072fd.pth"  # basename of torchvision's ResNet18_Weights.IMAGENET1K_V1.url


def write_imagenet(root: Path, classes: int = 1000, full: int = 4) -> Path:
    """train/ and val/ with ``classes`` class folders, so that 1000-output weights fit.

    train/: one 8x8 JPEG per class, five in each of the first ``full`` classes (whose fifth image
    each goes to the validation carve-out at val_fraction 0.1: floor(0.1 * 5 + 0.5) = 1, and
    floor(0.1 * 1 + 0.5) = 0 elsewhere); val/ (the test split): one JPEG in each of those ``full``
    classes, the other folders empty. So validation and test hold ``full`` images each: cheap to
    evaluate at 224x224.
    """
    for c in range(classes):
        name = f"n{c:08d}"
        for part, count in (("train", 5 if c < full else 1), ("val", 1 if c < full else 0)):
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.new("RGB", (8, 8), ((c * 37 + i * 61) % 256, c % 256, i * 50)).save(folder / f"{i}.JPEG")
    return root


def fake_published_weights(torch_home: Path, model: str = "resnet18", file: str = RESNET18_FILE) -> Path:
    """A state dict of ``model``'s shapes (1000 classes, random values) at torchvision's cached file name."""
    from shrink import models

    with torch.device("meta"):
        shapes = {key: value.shape for key, value in models.create(model, 1000).state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    state = {key: (torch.rand(shape, generator=generator) * 0.1 if shape.numel() > 1 else torch.ones(shape))
             for key, shape in shapes.items()}
    for key, value in state.items():
        if key.endswith("running_var"):
            value.fill_(1.0)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
    path = torch_home / "hub" / "checkpoints" / file
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
