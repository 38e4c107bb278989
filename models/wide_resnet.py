"""WideResNet-28-10 for CIFAR (Zagoruyko & Komodakis, 2016), as in the papers' code.

Pre-activation wide basic blocks, 4 per stage (depth = 6n + 4), widths 160, 320
and 640; biased convolutions; no dropout (the papers' WideResNet28x10).

Two details of both original repositories are kept because they change results:
- The last BatchNorm, before pooling, has ``momentum=0.9`` (every other layer 0.1):
  its running statistics follow the last batches closely.
- The layers keep PyTorch's default initialisation (weights and biases uniform in
  +-1/sqrt(fan_in)). The originals define a Xavier initialisation (``conv_init``)
  but never apply it.
"""
import torch.nn as nn

from models.registry import register


class WideBasic(nn.Module):
    def __init__(self, in_planes, planes, stride=1, dropout=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=True)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=True)

    def forward(self, x):
        out = self.dropout(self.conv1(self.relu(self.bn1(x))))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    def __init__(self, num_classes: int, depth: int = 28, widen_factor: int = 10, dropout: float = 0.0,
                 in_channels: int = 3, image_size: int = 32):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth {depth} is not 6n+4")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=True)
        stages, in_planes = [], widths[0]
        for width, stride in zip(widths[1:], (1, 2, 2)):
            blocks = []
            for i in range(n):
                blocks.append(WideBasic(in_planes, width, stride if i == 0 else 1, dropout))
                in_planes = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(widths[3], momentum=0.9)  # as in both originals
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(widths[3], num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.linear(self.pool(self.relu(self.bn(x))).flatten(1))


@register(transform="ResNet")
def WideResNet28x10(num_classes, in_channels=3, image_size=32):
    return WideResNet(num_classes, 28, 10, 0.0, in_channels, image_size)
