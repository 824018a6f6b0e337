"""The CIFAR ResNets of He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 4.2.

Exact variant: a 3x3 convolution with 16 filters, then three stages of ``n`` basic blocks with 16, 32
and 64 filters (the first block of the second and third stage has stride 2), global average pooling and
one fully connected classifier: ``6n + 2`` weighted layers. Every convolution is 3x3 without bias and is
followed by batch normalization. Shortcuts are option A: identity, and where a block halves the feature
map and doubles the width, the input subsampled with stride 2 and zero channels appended (no parameters).
Convolutions use He (fan-in) initialization.
"""

from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from shrink.models.base import ModelInfo, Shape, mark_classifier

PAPER = "He et al. 2016, Deep Residual Learning for Image Recognition (CVPR), CIFAR-10 networks"


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an option-A shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride = stride
        self.extra_channels = planes - in_planes

    def shortcut(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR with option-A shortcuts; works for any image size (global pooling)."""

    def __init__(self, blocks_per_stage: int, num_classes: int, in_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(blocks_per_stage):
                layers.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.blocks = nn.Sequential(*layers)
        self.fc = mark_classifier(nn.Linear(64, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.blocks(out)
        return self.fc(out.mean(dim=(2, 3)))


def build(depth: int, num_classes: int, input_shape: Shape) -> CifarResNet:
    """ResNet-``depth`` (``depth = 6n + 2``) for images of ``input_shape``."""
    return CifarResNet((depth - 2) // 6, num_classes, input_shape[0])


def _info(depth: int, params: str) -> ModelInfo:
    return ModelInfo(
        name=f"resnet{depth}",
        input_shape=(3, 32, 32),
        num_classes=10,
        paper=PAPER,
        description=f"ResNet-{depth} for CIFAR: {(depth - 2) // 6} basic blocks per stage, "
        f"16/32/64 filters, option-A shortcuts, {params} parameters",
    )


MODELS = tuple(
    (_info(depth, params), partial(build, depth))
    for depth, params in ((20, "0.27M"), (32, "0.46M"), (44, "0.66M"), (56, "0.85M"), (110, "1.7M"))
)
