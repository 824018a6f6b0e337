"""ImageNet models from torchvision, by torchvision's name, always created without weights.

torchvision is imported only when one of these models is built. ``create`` never downloads weights: to
start from trained ones, pass a local file to ``create(name, weights=path)``; torchvision's published
weights are found (and fetched when missing) by ``shrink.models.published``. The classifier marked for
pruning is the model's last ``nn.Linear`` (``fc`` for ResNets, ``classifier[-1]`` for VGG, AlexNet and
MobileNetV2, ``classifier`` for DenseNet).
"""

from functools import partial

from torch import nn

from shrink.models.base import ModelInfo, Shape, mark_classifier

RESNET = "He et al. 2016, Deep Residual Learning for Image Recognition (CVPR)"
VGG = "Simonyan & Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image Recognition (ICLR)"

# torchvision name -> (paper, description)
TORCHVISION = {
    "alexnet": ("Krizhevsky et al. 2012, ImageNet Classification with Deep CNNs (NeurIPS)", "torchvision's AlexNet"),
    "vgg11": (VGG, "VGG-11 (configuration A)"),
    "vgg13": (VGG, "VGG-13 (configuration B)"),
    "vgg16": (VGG, "VGG-16 (configuration D)"),
    "vgg19": (VGG, "VGG-19 (configuration E)"),
    "vgg16_bn": (VGG, "VGG-16 (configuration D) with batch normalization"),
    "resnet18": (RESNET, "ResNet-18, basic blocks"),
    "resnet34": (RESNET, "ResNet-34, basic blocks"),
    "resnet50": (RESNET, "ResNet-50 v1.5 (stride 2 in the 3x3 convolution), bottleneck blocks"),
    "resnet101": (RESNET, "ResNet-101 v1.5, bottleneck blocks"),
    "resnet152": (RESNET, "ResNet-152 v1.5, bottleneck blocks"),
    "mobilenet_v2": (
        "Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks (CVPR)",
        "MobileNetV2, width 1.0",
    ),
    "densenet121": ("Huang et al. 2017, Densely Connected Convolutional Networks (CVPR)", "DenseNet-121, growth rate 32"),
}  # fmt: skip


def build(name: str, num_classes: int, input_shape: Shape) -> nn.Module:
    """torchvision's ``name`` with fresh weights for 3-channel images of at least 32x32."""
    if input_shape[0] != 3 or min(input_shape[1:]) < 32:
        raise ValueError(f"{name} takes 3-channel images of at least 32x32, got input shape {tuple(input_shape)}")
    import torchvision

    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    mark_classifier(linears[-1])
    return model


MODELS = tuple(
    (
        ModelInfo(name, (3, 224, 224), num_classes=1000, paper=paper, description=f"torchvision {description}"),
        partial(build, name),
    )
    for name, (paper, description) in TORCHVISION.items()
)
