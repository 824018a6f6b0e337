"""shrink's own small demo models for 28x28 grey images, fast enough to train many times on a CPU.

Not from a paper. Both size their first fully connected layer from ``input_shape``, so they also take
the 8x8 ``digits`` images.

- ``small-mlp``: 784-100-10 with ReLU (79,510 parameters at 28x28).
- ``small-cnn``: conv 16 3x3 (padding 1), ReLU, 2x2 max pooling, conv 32 3x3 (padding 1), ReLU, 2x2 max
  pooling, fully connected to the classes (20,490 parameters at 28x28).
"""

from math import prod

from torch import Tensor, nn

from shrink.models.base import ModelInfo, Shape, feature_size, mark_classifier

PAPER = "none: shrink's demo model"


class SmallMLP(nn.Module):
    """One hidden layer of 100 ReLU units."""

    def __init__(self, num_classes: int, input_shape: Shape):
        super().__init__()
        self.fc1 = nn.Linear(prod(input_shape), 100)
        self.fc2 = mark_classifier(nn.Linear(100, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.fc1(x.flatten(1)).relu())


def _small_cnn_features(in_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
    """Two 3x3 convolutions with pooling and one fully connected classifier."""

    def __init__(self, num_classes: int, input_shape: Shape):
        super().__init__()
        flat = feature_size(lambda: _small_cnn_features(input_shape[0]), input_shape, "small-cnn")
        self.features = _small_cnn_features(input_shape[0])
        self.fc = mark_classifier(nn.Linear(flat, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).flatten(1))


MODELS = (
    (
        ModelInfo(
            name="small-mlp",
            input_shape=(1, 28, 28),
            num_classes=10,
            paper=PAPER,
            description="MLP 784-100-10 with ReLU, 79,510 parameters; trains in about a second per epoch on CPU",
        ),
        SmallMLP,
    ),
    (
        ModelInfo(
            name="small-cnn",
            input_shape=(1, 28, 28),
            num_classes=10,
            paper=PAPER,
            description="2-conv CNN (16, 32 filters of 3x3, max pooling) and one linear layer, 20,490 parameters",
        ),
        SmallCNN,
    ),
)
