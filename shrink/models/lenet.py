"""LeNets of LeCun et al., "Gradient-Based Learning Applied to Document Recognition", Proc. IEEE 1998,
in the variants that pruning papers use (Han et al. 2015 and most of their successors, through Caffe).

- ``lenet-300-100``: a fully connected network 784-300-100-10 with ReLU.
- ``lenet-5``: Caffe's LeNet (``examples/mnist/lenet.prototxt``), not the 1998 original with its
  subsampling layers, tanh units and RBF output. Exactly: conv 20 5x5 (stride 1, no padding),
  2x2 max pooling (stride 2), conv 50 5x5, 2x2 max pooling, fully connected 500, ReLU, fully connected
  10. As in Caffe there is no nonlinearity after the convolutions, and pooling rounds sizes up
  (``ceil_mode``). 431,080 parameters for 28x28 grey images.

Both size their first fully connected layer from ``input_shape``.
"""

from math import prod

from torch import Tensor, nn

from shrink.models.base import ModelInfo, Shape, feature_size, mark_classifier

PAPER = "LeCun et al. 1998, Gradient-Based Learning Applied to Document Recognition; as pruned by Han et al. 2015"


class LeNet300100(nn.Module):
    """Fully connected LeNet-300-100 with ReLU."""

    def __init__(self, num_classes: int, input_shape: Shape):
        super().__init__()
        self.fc1 = nn.Linear(prod(input_shape), 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = mark_classifier(nn.Linear(100, num_classes))
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.fc1(x.flatten(1)))
        return self.fc3(self.relu(self.fc2(x)))


def _lenet5_features(in_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, 20, 5),
        nn.MaxPool2d(2, 2, ceil_mode=True),
        nn.Conv2d(20, 50, 5),
        nn.MaxPool2d(2, 2, ceil_mode=True),
    )


class LeNet5(nn.Module):
    """Caffe's LeNet-5 (see the module docstring)."""

    def __init__(self, num_classes: int, input_shape: Shape):
        super().__init__()
        flat = feature_size(lambda: _lenet5_features(input_shape[0]), input_shape, "lenet-5")
        self.features = _lenet5_features(input_shape[0])
        self.fc1 = nn.Linear(flat, 500)
        self.fc2 = mark_classifier(nn.Linear(500, num_classes))
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.relu(self.fc1(self.features(x).flatten(1))))


MODELS = (
    (
        ModelInfo(
            name="lenet-300-100",
            input_shape=(1, 28, 28),
            num_classes=10,
            paper=PAPER,
            description="fully connected 784-300-100-10 with ReLU, 266,610 parameters",
        ),
        LeNet300100,
    ),
    (
        ModelInfo(
            name="lenet-5",
            input_shape=(1, 28, 28),
            num_classes=10,
            paper=PAPER + " (Caffe's LeNet)",
            description="Caffe's LeNet: conv20 5x5, pool, conv50 5x5, pool, fc500, ReLU, fc; 431,080 parameters",
        ),
        LeNet5,
    ),
)
