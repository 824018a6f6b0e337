"""CIFAR-VGG: Zagoruyko's VGG-16 with batch normalization and dropout for CIFAR-10.

From S. Zagoruyko, "92.45% on CIFAR-10 in Torch" (Torch blog, 2015, model ``vgg_bn_drop``), the network
that Blalock et al. 2020 call "CIFAR-VGG". Exact variant: thirteen 3x3 convolutions (with bias, padding 1)
in five blocks of 64, 64 | 128, 128 | 256 x3 | 512 x3 | 512 x3 filters, each followed by batch
normalization (eps 1e-3) and ReLU, with dropout 0.3 after the first convolution and 0.4 after every
other convolution that is not the last of its block, and 2x2 max pooling after each block. The classifier
head is dropout 0.5, Linear(512, 512), batch normalization, ReLU, dropout 0.5, Linear(512, classes).
Input images must be 32x32 (five poolings leave one 512-value pixel).
"""

from torch import Tensor, nn

from shrink.models.base import ModelInfo, Shape, mark_classifier

PAPER = "Zagoruyko 2015, 92.45% on CIFAR-10 in Torch (vgg_bn_drop); CIFAR-VGG in Blalock et al. 2020"

# (filters, dropout after this convolution or None); "M" is a 2x2 max pooling.
LAYOUT = (
    (64, 0.3), (64, None), "M",
    (128, 0.4), (128, None), "M",
    (256, 0.4), (256, 0.4), (256, None), "M",
    (512, 0.4), (512, 0.4), (512, None), "M",
    (512, 0.4), (512, 0.4), (512, None), "M",
)  # fmt: skip


class CifarVGG(nn.Module):
    """Zagoruyko's VGG-16 with batch norm and dropout (see the module docstring)."""

    def __init__(self, num_classes: int, in_channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            filters, dropout = item
            layers += [nn.Conv2d(channels, filters, 3, padding=1), nn.BatchNorm2d(filters, eps=1e-3), nn.ReLU()]
            if dropout is not None:
                layers.append(nn.Dropout(dropout))
            channels = filters
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(0.5),
            nn.Linear(512, 512),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Dropout(0.5),
            mark_classifier(nn.Linear(512, num_classes)),
        )
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def build(num_classes: int, input_shape: Shape) -> CifarVGG:
    """CIFAR-VGG for ``input_shape`` ``(C, 32, 32)``."""
    if tuple(input_shape[1:]) != (32, 32):
        raise ValueError(f"cifar-vgg takes 32x32 images (any channel count), got input shape {tuple(input_shape)}")
    return CifarVGG(num_classes, input_shape[0])


MODELS = (
    (
        ModelInfo(
            name="cifar-vgg",
            input_shape=(3, 32, 32),
            num_classes=10,
            paper=PAPER,
            description="VGG-16 for CIFAR with batch norm and dropout, 512-512 head, 15.0M parameters",
        ),
        build,
    ),
)
