"""Pre-activation ResNets for CIFAR (He et al., 2016), as in the mode-connectivity and SWA code.

Three stages of 16, 32 and 64 channels (times 4 for bottlenecks). As in the
papers' code, depths of 44 and more use bottleneck blocks with depth = 9n + 2
(PreResNet164: 18 blocks a stage; PreResNet110: 12), smaller depths basic
blocks with depth = 6n + 2 (PreResNet20: 3 blocks a stage).
"""
import torch.nn as nn

from models.init import he_normal_conv_
from models.registry import register


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class PreResNet(nn.Module):
    def __init__(self, num_classes: int, depth: int, in_channels: int = 3, image_size: int = 32):
        super().__init__()
        if depth >= 44:
            block, n, rule = Bottleneck, (depth - 2) // 9, (depth - 2) % 9
        else:
            block, n, rule = BasicBlock, (depth - 2) // 6, (depth - 2) % 6
        if rule or n < 1:
            raise ValueError(f"PreResNet depth {depth} is not 9n+2 (bottleneck) or 6n+2 (basic)")
        self.in_planes = 16
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.layer1 = self._stage(block, 16, n, stride=1)
        self.layer2 = self._stage(block, 32, n, stride=2)
        self.layer3 = self._stage(block, 64, n, stride=2)
        self.bn = nn.BatchNorm2d(64 * block.expansion)
        self.relu = nn.ReLU(inplace=True)
        # Global average pooling: AvgPool2d(8) on 32x32 inputs, and any other size works too.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64 * block.expansion, num_classes)
        he_normal_conv_(self)

    def _stage(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.in_planes != planes * block.expansion:
            downsample = nn.Conv2d(self.in_planes, planes * block.expansion, 1, stride=stride, bias=False)
        layers = [block(self.in_planes, planes, stride, downsample)]
        self.in_planes = planes * block.expansion
        layers += [block(self.in_planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.fc(self.pool(self.relu(self.bn(x))).flatten(1))


@register(transform="ResNet")
def PreResNet20(num_classes, in_channels=3, image_size=32):
    return PreResNet(num_classes, 20, in_channels, image_size)


@register(transform="ResNet")
def PreResNet110(num_classes, in_channels=3, image_size=32):
    return PreResNet(num_classes, 110, in_channels, image_size)


@register(transform="ResNet")
def PreResNet164(num_classes, in_channels=3, image_size=32):
    return PreResNet(num_classes, 164, in_channels, image_size)
