"""What the figures share: the first images of a set, a model with its SGD, whether ours runs --amp."""
from __future__ import annotations

import torch

import data
import models
import utils
from runtime.processes import emulated_on_this_cpu


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



def emulates_bf16(device: torch.device) -> bool:
    """Whether ``device`` is a CPU that emulates bfloat16 (15x slower than fp32 for VGG16 there)."""
    return device.type == "cpu" and emulated_on_this_cpu("bfloat16")


def times_amp(device: torch.device, tiny: bool) -> bool:
    """Whether our side is timed under --amp: on a GPU and on a CPU with native bfloat16, yes; where
    the CPU emulates it (minutes a figure, and nobody trains so there: the scripts warn), only in
    fp32; under --tiny always, for the smoke run goes every way."""
    return tiny or not emulates_bf16(device)
