"""The model zoo: exact parameter counts, shapes, classifier marks, errors, weights files."""

import pytest
import torch
from torch import nn

from shrink import models
from shrink.models.cifar_resnet import BasicBlock

# CIFAR-VGG by hand (3x3 convs with bias; BN adds 2 per channel):
#   conv  3->64    1,728 +  64 + 128 =     1,920
#   conv 64->64   36,864 +  64 + 128 =    37,056
#   conv 64->128  73,728 + 128 + 256 =    74,112
#   conv128->128 147,456 + 128 + 256 =   147,840
#   conv128->256 294,912 + 256 + 512 =   295,680
#   conv256->256 589,824 + 256 + 512 =   590,592  (x2)
#   conv256->512 1,179,648 + 512 + 1,024 = 1,181,184
#   conv512->512 2,359,296 + 512 + 1,024 = 2,360,832  (x5)
#   head: Linear 512->512 262,656 + BN 1,024 + Linear 512->10 5,130 = 268,810
#   total 14,723,136 + 268,810 = 14,991,946
EXACT_PARAMS = {
    "small-mlp": 79_510,  # 784*100 + 100 + 100*10 + 10
    "small-cnn": 20_490,  # 16*9+16 + 32*16*9+32 + 32*7*7*10+10
    "lenet-300-100": 266_610,  # 784*300+300 + 300*100+100 + 100*10+10
    "lenet-5": 431_080,  # 20*25+20 + 50*20*25+50 + 800*500+500 + 500*10+10
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "cifar-vgg": 14_991_946,
    "resnet18": 11_689_512,
}
# one of each architecture (the deeper CIFAR ResNets share resnet20's code)
FORWARD = ["small-mlp", "small-cnn", "lenet-300-100", "lenet-5", "resnet20", "cifar-vgg"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", EXACT_PARAMS)
def test_parameter_counts_are_exact(name):
    assert n_params(models.create(name)) == EXACT_PARAMS[name]
    assert models.parameter_count(name) == EXACT_PARAMS[name]


@pytest.mark.parametrize("name", FORWARD)
def test_forward_gives_one_logit_per_class(name):
    model = models.create(name, num_classes=7).eval()
    shape = models.info(name).input_shape
    assert model(torch.randn(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize("name", ["small-mlp", "small-cnn", "lenet-300-100"])
def test_small_models_take_8x8_digits(name):
    model = models.create(name, input_shape=(1, 8, 8))
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_first_linear_is_sized_from_the_input_shape():
    assert n_params(models.create("small-mlp", input_shape=(1, 8, 8))) == 64 * 100 + 100 + 1010
    # 8x8 -> pool 4x4 -> pool 2x2: 32*2*2 inputs to the classifier
    assert n_params(models.create("small-cnn", input_shape=(1, 8, 8))) == 160 + 4640 + 128 * 10 + 10
    # Caffe rounds pooling up: 17 -> conv 13 -> pool 7 -> conv 3 -> pool 2, so 50*2*2 inputs to fc1
    assert models.create("lenet-5", input_shape=(1, 17, 17)).fc1.in_features == 200


@pytest.mark.parametrize("name", list(EXACT_PARAMS) + ["vgg16", "mobilenet_v2", "densenet121", "alexnet"])
def test_exactly_one_classifier_marked_and_it_is_the_last_linear(name):
    with torch.device("meta"):
        model = models.create(name, num_classes=13)
    marked = [m for m in model.modules() if getattr(m, "is_classifier", False)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert marked == [linears[-1]]
    assert marked[0].out_features == 13


def test_num_classes_resizes_only_the_classifier():
    assert n_params(models.create("resnet20", num_classes=100)) == 269_722 + 64 * 90 + 90


def test_cifar_resnet_has_6n_plus_2_weighted_layers_and_no_projection_shortcuts():
    model = models.create("resnet56")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == 56
    assert all(c.kernel_size == (3, 3) for c in convs)


def test_option_a_shortcut_subsamples_and_appends_zero_channels():
    block = BasicBlock(16, 32, stride=2)
    x = torch.randn(2, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert not out[:, 16:].any()


def test_caffe_lenet5_has_no_nonlinearity_after_its_convolutions():
    kinds = [type(m).__name__ for m in models.create("lenet-5").features]
    assert kinds == ["Conv2d", "MaxPool2d", "Conv2d", "MaxPool2d"]


def test_registry_lists_every_model_once_with_its_paper():
    names = [m.name for m in models.available()]
    assert len(names) == len(set(names))
    assert set(EXACT_PARAMS) | {"vgg16", "resnet50", "mobilenet_v2"} <= set(names)
    assert "He et al. 2016" in models.info("resnet56").paper
    assert models.info("cifar-vgg").input_shape == (3, 32, 32)
    assert models.info("resnet50").num_classes == 1000


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(models.UnknownModel, match=r"unknown model 'resnet57'; known models: small-mlp, .*resnet56"):
        models.create("resnet57")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, "num_classes must be a positive integer, got 0"),
        ({"num_classes": 2.5}, "num_classes must be a positive integer, got 2.5"),
        ({"input_shape": (28, 28)}, r"input_shape must be three positive integers \(C, H, W\), got \(28, 28\)"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.create("small-mlp", **kwargs)


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("lenet-5", (1, 8, 8), r"lenet-5 cannot take input shape \(1, 8, 8\)"),
        ("cifar-vgg", (3, 28, 28), r"cifar-vgg takes 32x32 images \(any channel count\), got input shape \(3, 28, 28\)"),
        ("resnet18", (1, 224, 224), r"resnet18 takes 3-channel images of at least 32x32, got input shape \(1, 224, 224\)"),
    ],
)
def test_input_shapes_a_model_cannot_take_are_rejected(name, shape, message):
    with pytest.raises(ValueError, match=message):
        models.create(name, input_shape=shape)


def test_weights_file_round_trip(tmp_path):
    source = models.create("small-cnn")
    torch.save(source.state_dict(), tmp_path / "w.pt")
    loaded = models.create("small-cnn", weights=tmp_path / "w.pt")
    for (name, a), (_, b) in zip(source.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_missing_weights_file(tmp_path):
    with pytest.raises(models.WeightsError, match=r"weights file .*nope.pt does not exist"):
        models.create("small-mlp", weights=tmp_path / "nope.pt")


def test_weights_of_another_model_are_rejected_with_the_differences(tmp_path):
    torch.save(models.create("lenet-300-100").state_dict(), tmp_path / "lenet.pt")
    with pytest.raises(
        models.WeightsError,
        match=r"does not fit small-mlp: unexpected fc3.weight; unexpected fc3.bias; "
        r"fc1.weight has shape \(300, 784\), expected \(100, 784\); and 3 more$",
    ):
        models.create("small-mlp", weights=tmp_path / "lenet.pt")


def test_weights_file_that_is_not_a_state_dict(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(models.WeightsError, match="cannot read weights file .*junk.pt as a torch state dict"):
        models.create("small-mlp", weights=tmp_path / "junk.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(models.WeightsError, match="holds a list, not a state dict of tensors"):
        models.create("small-mlp", weights=tmp_path / "list.pt")
