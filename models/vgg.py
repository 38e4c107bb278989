"""VGG16/19 for CIFAR, with and without BatchNorm, as in the mode-connectivity code.

Five blocks of 3x3 convolutions (64, 128, 256, 512, 512 channels), each block
followed by 2x2 max pooling, then a classifier of two 512-wide hidden layers
with dropout.

On images whose side is a multiple of 32 (CIFAR) the poolings are the original's. On other sizes
(Fashion-MNIST's 28x28) they round up (``ceil_mode``: a map of odd side is pooled as if padded by
one row and column, which after a ReLU is the same as zeros): 28 -> 14 -> 7 -> 4 -> 2 -> 1, so the
classifier sees one 512-vector as on CIFAR, and the CIFAR models are unchanged. Images of 16x16 or
less are refused: their last pooling would have a single pixel to pool.
"""
import math

import torch.nn as nn

from models.init import he_normal_conv_
from models.registry import register

_BLOCKS = {
    16: [[64] * 2, [128] * 2, [256] * 3, [512] * 3, [512] * 3],
    19: [[64] * 2, [128] * 2, [256] * 4, [512] * 4, [512] * 4],
}


class VGG(nn.Module):
    def __init__(self, num_classes: int, depth: int = 16, batch_norm: bool = False,
                 in_channels: int = 3, image_size: int = 32):
        super().__init__()
        if image_size <= 16:
            raise ValueError(f"VGG{depth} needs images larger than 16x16 pixels, for each of its five 2x2 poolings "
                             f"to pool more than one pixel (got {image_size}x{image_size})")
        ceil_mode = image_size % 32 != 0
        layers, channels = [], in_channels
        for block in _BLOCKS[depth]:
            for width in block:
                layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode))
        self.features = nn.Sequential(*layers)
        flat = 512 * math.ceil(image_size / 32) ** 2  # five halvings, rounded up (exact on CIFAR)
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(flat, 512), nn.ReLU(inplace=True),
            nn.Dropout(), nn.Linear(512, 512), nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )
        he_normal_conv_(self)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


@register
def VGG16(num_classes, in_channels=3, image_size=32):
    return VGG(num_classes, 16, False, in_channels, image_size)


@register
def VGG16BN(num_classes, in_channels=3, image_size=32):
    return VGG(num_classes, 16, True, in_channels, image_size)


@register
def VGG19(num_classes, in_channels=3, image_size=32):
    return VGG(num_classes, 19, False, in_channels, image_size)


@register
def VGG19BN(num_classes, in_channels=3, image_size=32):
    return VGG(num_classes, 19, True, in_channels, image_size)
