"""Every registered model: a forward and a backward pass without NaN; the registry's contract."""
import pytest
import torch

import models

BIG = {"VGG16", "VGG16BN", "VGG19", "VGG19BN", "PreResNet110", "PreResNet164", "WideResNet28x10"}


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


@pytest.mark.parametrize("name", ["ConvFC", "MLP", "PreResNet20"])
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
