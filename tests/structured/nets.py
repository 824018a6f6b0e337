"""Small models with every coupling structured pruning must follow: residual additions (with a
parameter-free padding shortcut and with a 1x1 convolution shortcut), a flatten into linear
layers, and plain linear stacks. BatchNorm parameters and statistics are randomised so that a
masked channel that leaks (a nonzero BatchNorm shift) would show in the outputs."""

import torch
import torch.nn.functional as F
from torch import nn


class PadShortcut(nn.Module):
    """CIFAR ResNet option A: subsample and zero-pad the channels (no parameters)."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class Block(nn.Module):
    def __init__(self, inputs: int, planes: int, stride: int, option: str):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride == 1 and inputs == planes:
            self.shortcut = nn.Identity()
        elif option == "A":
            self.shortcut = PadShortcut(planes)
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """A CIFAR-shaped ResNet with one block per stage (widths 16, 32, 64)."""

    def __init__(self, option: str):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.layers = nn.Sequential(Block(16, 16, 1, option), Block(16, 32, 2, option), Block(32, 64, 2, option))
        self.fc = nn.Linear(64, 10)
        self.fc.is_classifier = True

    def forward(self, x):
        x = self.layers(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def vgg() -> nn.Module:
    """Conv-BN-ReLU-pool x3, then a flatten of 32 x 4 x 4 into two linear layers."""
    layers = []
    for cin, cout in ((3, 16), (16, 32), (32, 32)):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))
    model[-1].is_classifier = True
    return model


def mlp() -> nn.Module:
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    model[-1].is_classifier = True
    return model


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded weights, and BatchNorm scales, shifts and running statistics away from their defaults."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.reset_parameters()
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


NETS = {
    "resnet-pad": (lambda: ResNet("A"), (3, 32, 32)),
    "resnet-conv": (lambda: ResNet("B"), (3, 32, 32)),
    "vgg": (vgg, (3, 32, 32)),
    "mlp": (mlp, (1, 28, 28)),
}
