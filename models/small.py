"""Small models for CPUs, tests and the DIGITS demo."""
import torch
import torch.nn as nn

from models.init import he_normal_conv_
from models.registry import register


class ConvFC(nn.Module):
    """Three 5x5 conv layers (32, 64, 128) with 3x3/2 max pooling, then 1000-1000 FC layers.

    The mode-connectivity paper's small CIFAR network. Its pooling has no padding,
    which needs inputs of 23 pixels or more; smaller images (DIGITS, 8x8) pad the
    pooling by 1 so that three poolings still leave a map (8 -> 4 -> 2 -> 1).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 32):
        super().__init__()
        pool_padding = 0 if image_size >= 23 else 1
        layers, channels = [], in_channels
        for width in (32, 64, 128):
            # The paper's conv -> ReLU -> pool, computed as conv -> pool -> ReLU: the same function
            # and gradients (ReLU is monotone, so it commutes with max), but the ReLU and its
            # backward run on a quarter of the values: about 5% of a CPU training step.
            layers += [nn.Conv2d(channels, width, 5, padding=2), nn.MaxPool2d(3, 2, padding=pool_padding),
                       nn.ReLU(inplace=True)]
            channels = width
        self.conv_part = nn.Sequential(*layers)
        with torch.no_grad():  # the flattened size, for any image size (1152 on CIFAR)
            flat = self.conv_part(torch.zeros(1, in_channels, image_size, image_size)).numel()
        self.fc_part = nn.Sequential(
            nn.Linear(flat, 1000), nn.ReLU(inplace=True),
            nn.Linear(1000, 1000), nn.ReLU(inplace=True),
            nn.Linear(1000, num_classes),
        )
        he_normal_conv_(self)

    def forward(self, x):
        return self.fc_part(self.conv_part(x).flatten(1))


class MLP(nn.Module):
    """A fully connected network: flatten, two hidden ReLU layers, linear output."""

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 32, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_channels * image_size ** 2, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.net(x)


class DeepMLP(nn.Module):
    """Git Re-Basin's MLP (its MNIST experiments): flatten, three hidden ReLU layers of 512, linear output."""

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 32, hidden: int = 512,
                 depth: int = 3):
        super().__init__()
        layers, width = [nn.Flatten()], in_channels * image_size ** 2
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, num_classes))

    def forward(self, x):
        return self.net(x)


register(ConvFC)
register(MLP)


@register
def MLP3x512(num_classes, in_channels=3, image_size=32):
    return DeepMLP(num_classes, in_channels, image_size, hidden=512, depth=3)
