"""The CIFAR ResNets of He et al. (2016, section 4.2): ResNet20, 32, 44, 56 and 110.

Depth 6n + 2: a 3x3 convolution, three stages of n post-activation basic blocks
(conv-BN-ReLU-conv-BN, add, ReLU) with 16, 32 and 64 channels, global average
pooling and a linear classifier. Shortcuts are option A, parameter-free: where a
stage halves the map and doubles the width, the input is subsampled with stride 2
and its new channels are zeros. That gives the paper's sizes (ResNet20 0.27M
parameters, ResNet56 0.85M) and is the common CIFAR implementation (akamaster's),
whose initialisation we follow too: Kaiming-normal (fan-in) weights for the
convolutions and the classifier.

Learning-subspaces' cResNet20 (models/cifar_resnet.py, from open_lth) differs:
its shortcuts are a 1x1 stride-2 convolution and a BatchNorm (option B), its classifier
a bias-free 1x1 convolution, its convolutions Kaiming-normal fan-in as here. ``cResNet20``
is that network: ``shortcut="B"`` and a bias-free ``nn.Linear`` classifier, the same
function and the same 272,464 parameters on CIFAR-10 (a 1x1 convolution on the pooled
1x1 map is a linear layer; its weight is in the cos^2 regulariser either way, as a
convolution's there and as a linear layer's here).
"""
import torch.nn as nn
import torch.nn.functional as F

from models.registry import register


class ZeroPadShortcut(nn.Module):
    """Option A: x[:, :, ::2, ::2] with zero channels added on both sides, no parameters."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra = extra_channels

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = ZeroPadShortcut(planes - in_planes) if shortcut == "A" else nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, num_classes: int, depth: int, in_channels: int = 3, image_size: int = 32,
                 shortcut: str = "A", classifier_bias: bool = True, width: int = 1):
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"ResNet depth {depth} is not 6n+2")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut {shortcut!r} is not 'A' (zero padding) or 'B' (1x1 convolution)")
        n = (depth - 2) // 6
        w = 16 * width  # Git Re-Basin's width multiplier: every stage `width` times as wide
        self.conv1 = nn.Conv2d(in_channels, w, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        stages, in_planes = [], w
        for planes, stride in ((w, 1), (2 * w, 2), (4 * w, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1, shortcut))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)  # 8x8 maps on CIFAR, 2x2 on DIGITS' 8x8 images
        self.fc = nn.Linear(4 * w, num_classes, bias=classifier_bias)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


@register
def ResNet20(num_classes, in_channels=3, image_size=32, shortcut="A"):
    return ResNet(num_classes, 20, in_channels, image_size, shortcut)


@register
def ResNet20x4(num_classes, in_channels=3, image_size=32, shortcut="A"):
    """ResNet20 four times as wide (64, 128, 256 channels): Git Re-Basin's width study."""
    return ResNet(num_classes, 20, in_channels, image_size, shortcut, width=4)


@register
def ResNet32(num_classes, in_channels=3, image_size=32, shortcut="A"):
    return ResNet(num_classes, 32, in_channels, image_size, shortcut)


@register
def ResNet44(num_classes, in_channels=3, image_size=32, shortcut="A"):
    return ResNet(num_classes, 44, in_channels, image_size, shortcut)


@register
def ResNet56(num_classes, in_channels=3, image_size=32, shortcut="A"):
    return ResNet(num_classes, 56, in_channels, image_size, shortcut)


@register
def ResNet110(num_classes, in_channels=3, image_size=32, shortcut="A"):
    return ResNet(num_classes, 110, in_channels, image_size, shortcut)


@register
def cResNet20(num_classes, in_channels=3, image_size=32):
    """Learning-subspaces' cResNet20 (open_lth's cifar_resnet_20): ResNet20 with projection shortcuts
    and a bias-free classifier."""
    return ResNet(num_classes, 20, in_channels, image_size, shortcut="B", classifier_bias=False)
