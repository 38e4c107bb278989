"""Initialisations of the papers' code, shared by the models."""
import math

import torch.nn as nn


def he_normal_conv_(module: nn.Module) -> None:
    """Conv weights ~ N(0, 2 / (k * k * out_channels)), biases 0; BatchNorm to identity.

    This is the VGG / PreResNet initialisation of the mode-connectivity and SWA code
    (He et al. with fan-out), which the papers' numbers were obtained with.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
