from __future__ import annotations

from typing import Callable

import torch

import torch.nn as nn

MODELS: dict[str, Callable[..., nn.Module]] = {}
# name -> the normalisation ("VGG" or "ResNet" constants, see data.NORMALISATIONS) that the SWA
# code's configuration of the model uses; its train.py has no --transform and takes this one
TRANSFORMS: dict[str, str] = {}


def register(constructor: Callable[..., nn.Module] | None = None, *, transform: str = "VGG"):
    """Record ``constructor`` under its own name: ``@register`` or ``@register(transform="ResNet")``."""
    def record(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if constructor.__name__ in MODELS:
            raise ValueError(f"model {constructor.__name__} registered twice")
        MODELS[constructor.__name__] = constructor
        TRANSFORMS[constructor.__name__] = transform
        return constructor
    return record if constructor is None else record(constructor)


def default_transform(name: str) -> str:
    """The normalisation the SWA code uses for model ``name`` (VGG's for models it does not have)."""
    return TRANSFORMS.get(name, "VGG")


def build_model(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32,
                **kwargs) -> nn.Module:
    """Build a registered model; an unknown name is a ``KeyError`` listing the known ones."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r} (choose from {', '.join(sorted(MODELS))})")
    return MODELS[name](num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                        **kwargs)


def model_from_checkpoint(ckpt: dict, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a 'model' checkpoint's network (``runtime.load_checkpoint``) with its weights and
    BatchNorm statistics."""
    model = build_model(ckpt["model"], ckpt["num_classes"], **ckpt["model_kwargs"])
    model.load_state_dict(ckpt["model_state"])
    return model.to(device)
