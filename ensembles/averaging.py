"""Stochastic Weight Averaging: the SWA repository's schedule, which epochs join, and the average.

Epochs are counted as the original code counts them (see each function).
"""
from __future__ import annotations

import copy

import torch.nn as nn
from torch.optim.swa_utils import AveragedModel


def swa_learning_rate(epoch: int, lr_init: float, epochs: int, swa_start: int | None = None,
                      swa_lr: float | None = None) -> float:
    """The SWA repository's per-epoch schedule, ``epoch`` from 0.

    With ``swa_start`` (``--swa``): lr_init for the first half of swa_start epochs,
    linear down to swa_lr between 50% and 90% of swa_start, then swa_lr. Without:
    the same shape over all ``epochs``, down to 0.01 * lr_init (the papers' SGD
    schedule, ``utils.learning_rate_schedule``).
    """
    if swa_start is None:
        t, ratio = epoch / epochs, 0.01
    else:
        t, ratio = epoch / swa_start, swa_lr / lr_init
    if t <= 0.5:
        factor = 1.0
    elif t <= 0.9:
        factor = 1.0 - (1.0 - ratio) * (t - 0.5) / 0.4
    else:
        factor = ratio
    return lr_init * factor


def joins_average(epoch: int, swa_start: int, swa_c_epochs: int) -> bool:
    """Whether the model after epoch ``epoch`` (from 1) joins the average: from swa_start on,
    every swa_c_epochs epochs (the SWA repository's ``(epoch + 1 - swa_start) % swa_c_epochs``)."""
    return epoch >= swa_start and (epoch - swa_start) % swa_c_epochs == 0


def averaged_model(model: nn.Module) -> AveragedModel:
    """An equal-weight running average of ``model``'s parameters (``torch.optim.swa_utils``).

    BatchNorm statistics are not averaged (``use_buffers=False``): averaging running
    statistics of different weights means nothing, so they are recomputed for the
    averaged weights with ``utils.update_bn`` before every evaluation.
    """
    return AveragedModel(model, use_buffers=False)


def load_average(average: AveragedModel, state: dict, count: int) -> None:
    """Restore an average saved as its module's ``state_dict`` and its member count."""
    average.module.load_state_dict(state)
    average.n_averaged.fill_(count)


def plain_copy(average: AveragedModel) -> nn.Module:
    """The averaged network as a plain module, e.g. to save as an ordinary model checkpoint."""
    return copy.deepcopy(average.module)
