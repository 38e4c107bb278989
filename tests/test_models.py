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


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_every_model_builds_for_fashion_mnist(name):
    """28x28 images of one channel (Fashion-MNIST, MNIST): a forward and a backward pass."""
    torch.manual_seed(0)
    model = models.build_model(name, num_classes=10, in_channels=1, image_size=28)
    batch = 2 if name in BIG else 4
    out = model(torch.randn(batch, 1, 28, 28))
    assert out.shape == (batch, 10) and torch.isfinite(out).all()
    out.logsumexp(1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_vgg_on_28x28_pools_as_if_its_odd_maps_were_zero_padded():
    """VGG's rounded-up pooling (ceil_mode, only for sides that are not multiples of 32): the 7x7 map
    pooled as an 8x8 one padded with a zero row and column (its values, after a ReLU, are >= 0)."""
    model = models.build_model("VGG16", 10, 1, 28)
    pools = [m for m in model.features if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 5 and all(p.ceil_mode for p in pools)
    assert not any(m.ceil_mode for m in models.build_model("VGG16", 10).features
                   if isinstance(m, torch.nn.MaxPool2d))  # CIFAR's: the original's floor pooling
    x = torch.rand(3, 8, 7, 7)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1))
    assert torch.equal(pools[2](x), torch.nn.functional.max_pool2d(padded, 2, 2))
    shapes, h = [], torch.randn(1, 1, 28, 28)
    for layer in model.features:
        h = layer(h)
        if isinstance(layer, torch.nn.MaxPool2d):
            shapes.append(h.shape[-1])
    assert shapes == [14, 7, 4, 2, 1] and model.classifier[1].in_features == 512
    # the same parameters as on CIFAR but the first convolution's input channels: checkpoints alike
    cifar = models.build_model("VGG16", 10).state_dict()
    assert {k: v.shape for k, v in model.state_dict().items() if k != "features.0.weight"} == \
        {k: v.shape for k, v in cifar.items() if k != "features.0.weight"}


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
    with pytest.raises(ValueError, match="larger than 16x16"):
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
