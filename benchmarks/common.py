"""What the figures share: the first images of a set, and a model with its SGD."""
from __future__ import annotations

import torch

import data
import models
import utils


def head(images: data.ImageSet, n: int) -> data.ImageSet:
    return data.ImageSet(images.images[:n], images.labels[:n])


def model_and_sgd(name: str, device, channels_last: bool = False, reference: bool = False, shape=(3, 32)):
    """A model (for images of ``shape``: channels, side) and its SGD: the scripts' (fused where torch
    has it), or the original's ``torch.optim.SGD``."""
    torch.manual_seed(0)
    model = models.build_model(name, 10, *shape).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    make = torch.optim.SGD if reference else utils.sgd
    return model, make(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

