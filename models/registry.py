from __future__ import annotations

from typing import Callable

import torch.nn as nn

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Record ``constructor`` under its own name (``@register def VGG16(...)``)."""
    if constructor.__name__ in MODELS:
        raise ValueError(f"model {constructor.__name__} registered twice")
    MODELS[constructor.__name__] = constructor
    return constructor


def build_model(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32,
                **kwargs) -> nn.Module:
    """Build a registered model; an unknown name is a ``KeyError`` listing the known ones."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r} (choose from {', '.join(sorted(MODELS))})")
    return MODELS[name](num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                        **kwargs)
