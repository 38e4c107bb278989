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


def simplex_net_init_(module: nn.Module) -> None:
    """The initialisation of loss-surface-simplexes' SimplexNet layers (simplex/models/simplex_models.py):
    every convolution's and linear layer's weight and bias ~ U(-1/sqrt(n), 1/sqrt(n)), n the fan-in
    (in_channels times the kernel's size; in_features); BatchNorm weights ~ U(0, 1), biases 0.

    Its VGG16Simplex also has a He-initialisation loop, but that loop tests ``nn.Conv2d``, which its
    simplex layers are not, so it never runs: this is the initialisation of its vertices, and of the
    random simplex whose volume V0 normalises SPRO's lambda. Other parameters keep the module's own.
    """
    for m in module.modules():
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            fan_in = m.in_channels * math.prod(m.kernel_size) if isinstance(m, nn.modules.conv._ConvNd) \
                else m.in_features
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.uniform_(m.bias, -bound, bound)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.uniform_(m.weight, 0.0, 1.0)
            nn.init.zeros_(m.bias)
