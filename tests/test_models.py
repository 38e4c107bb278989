"""Every registered model: a forward and a backward pass without NaN; the registry's contract."""
import pytest
import torch

import models

BIG = {"VGG16", "VGG16BN", "VGG19", "VGG19BN", "PreResNet110", "PreResNet164", "WideResNet28x10", "ResNet110"}


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_forward_backward(name):
    torch.manual_seed(0)
    model = models.build_model(name, num_classes=7)
    batch = 2 if name in BIG else 8
    x = torch.randn(batch, 3, 32, 32)
    out = model(x)
    assert out.shape == (batch, 7)
    out.logsumexp(1).mean().backward()
    assert torch.isfinite(out).all()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["ConvFC", "MLP", "PreResNet20", "ResNet20", "ResNet56"])
def test_small_models_take_digits_shape(name):
    model = models.build_model(name, num_classes=10, in_channels=1, image_size=8)
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 10)


def test_published_sizes():
    """Parameter counts of the papers' CIFAR-10 architectures (VGG16 ~15M, PreResNet164 ~1.7M, WRN ~36.5M)."""
    count = lambda name: sum(p.numel() for p in models.build_model(name, 10).parameters())  # noqa: E731
    assert count("VGG16") == 15_245_130
    assert count("PreResNet164") == 1_703_258
    assert count("WideResNet28x10") == 36_489_290
    assert count("ConvFC") == 3 * 32 * 25 + 32 + 32 * 64 * 25 + 64 + 64 * 128 * 25 + 128 \
        + 1152 * 1000 + 1000 + 1000 * 1000 + 1000 + 1000 * 10 + 10


def cifar_resnet_size(depth: int, num_classes: int = 10, in_channels: int = 3) -> int:
    """He et al.'s CIFAR ResNet counted by hand: 3x3 convolutions without bias, BatchNorm's scale and
    shift, parameter-free (option A) shortcuts, a 64 -> classes linear layer."""
    n = (depth - 2) // 6
    total = in_channels * 16 * 9 + 2 * 16  # first convolution and its BatchNorm
    previous = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += previous * width * 9 + width * width * 9 + 2 * (2 * width)
            previous = width
    return total + 64 * num_classes + num_classes


@pytest.mark.parametrize("name,depth,paper", [("ResNet20", 20, 0.27e6), ("ResNet32", 32, 0.46e6),
                                              ("ResNet44", 44, 0.66e6), ("ResNet56", 56, 0.85e6),
                                              ("ResNet110", 110, 1.7e6)])
def test_cifar_resnet_sizes(name, depth, paper):
    """He et al. 2016, Table 6: 0.27M, 0.46M, 0.66M, 0.85M and 1.7M parameters."""
    count = sum(p.numel() for p in models.build_model(name, 10).parameters())
    assert count == cifar_resnet_size(depth)
    assert round(count / 1e6, 2 if depth < 110 else 1) == paper / 1e6
    # learning-subspaces' projection shortcuts: a 1x1 convolution and a BatchNorm where the width doubles
    with_b = sum(p.numel() for p in models.build_model(name, 10, shortcut="B").parameters())
    assert with_b - count == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64


def test_cifar_resnet_shortcut_is_subsampling_and_zero_channels():
    from models.resnet import ZeroPadShortcut
    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(16)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert not out[:, :8].any() and not out[:, 24:].any()


def test_registry_errors():
    with pytest.raises(KeyError, match="choose from"):
        models.build_model("ResNet9000", 10)
    with pytest.raises(ValueError, match="32x32"):
        models.build_model("VGG16", 10, in_channels=1, image_size=8)


@pytest.mark.parametrize("channels,size", [(3, 32), (1, 8)])
def test_convfc_pool_before_relu_is_the_papers_conv_relu_pool(channels, size):
    """ConvFC runs conv -> pool -> ReLU; the paper's order conv -> ReLU -> pool gives the same
    outputs and the same gradients, bit for bit."""
    torch.manual_seed(0)
    model = models.build_model("ConvFC", 10, channels, size)
    conv = model.conv_part
    papers = torch.nn.Sequential(*[conv[i] for i in (0, 2, 1, 3, 5, 4, 6, 8, 7)])
    x = torch.randn(16, channels, size, size, requires_grad=True)
    inputs = [x, *conv.parameters()]
    ours_out, theirs_out = conv(x), papers(x)
    assert torch.equal(ours_out, theirs_out)
    ours = torch.autograd.grad(ours_out.square().sum(), inputs)
    theirs = torch.autograd.grad(theirs_out.square().sum(), inputs)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
