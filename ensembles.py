"""Schedules and averaging for Fast Geometric Ensembling, Snapshot Ensembles and SWA.

Importable from your own code: nothing here parses arguments or prints.

Epochs are counted as the original code counts them: a schedule takes the epoch
from 0 and the fraction of it done; "epoch e" in a run's output counts from 1.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel

import utils

SCHEDULES = ("linear", "cosine")  # FGE's triangle, and Snapshot Ensembles' cosine


# --------------------------------------------------------------------------- FGE and SSE

def cycle_position(epoch: int, fraction: float, cycle: int) -> float:
    """Where an iteration lies in its cycle, t in [0, 1): epoch ``epoch`` (from 0)
    covers t from (epoch % cycle) / cycle up to (epoch % cycle + 1) / cycle."""
    return ((epoch % cycle) + fraction) / cycle


def fge_learning_rate(epoch: int, fraction: float, cycle: int, lr_1: float, lr_2: float) -> float:
    """FGE's cyclic rate (the original ``cyclic_learning_rate``): a triangle in t,
    lr_1 at t = 0, down linearly to lr_2 at t = 0.5, back up to lr_1 at t = 1."""
    t = cycle_position(epoch, fraction, cycle)
    if t < 0.5:
        return (1.0 - 2.0 * t) * lr_1 + 2.0 * t * lr_2
    return (2.0 * t - 1.0) * lr_1 + (2.0 - 2.0 * t) * lr_2


def sse_learning_rate(epoch: int, fraction: float, cycle: int, lr_1: float) -> float:
    """Snapshot Ensembles' rate (Huang et al., 2017): cosine from lr_1 towards 0 over
    each cycle, restarted at lr_1 when the next cycle begins."""
    t = cycle_position(epoch, fraction, cycle)
    return 0.5 * lr_1 * (1.0 + math.cos(math.pi * t))


def is_snapshot_epoch(epoch: int, cycle: int, schedule: str = "linear") -> bool:
    """Whether the model at the end of epoch ``epoch`` (from 0) is a snapshot.

    An epoch ends at t = (epoch % cycle + 1) / cycle. FGE collects at the bottom of
    the triangle, t = 0.5, i.e. when epoch % cycle + 1 == cycle / 2 (the original
    ``(epoch % args.cycle + 1) == args.cycle // 2``); SSE at the end of the cosine,
    t = 1, i.e. when epoch % cycle + 1 == cycle.
    """
    end = epoch % cycle + 1
    return end == cycle // 2 if schedule == "linear" else end == cycle


def snapshot_epochs(epochs: int, cycle: int, schedule: str = "linear") -> list[int]:
    """The epochs (from 1) after which a snapshot joins the ensemble."""
    return [e + 1 for e in range(epochs) if is_snapshot_epoch(e, cycle, schedule)]


class ProbabilityEnsemble:
    """A running ensemble: the mean of its members' softmax probabilities ``(N, classes)``."""

    def __init__(self):
        self.size = 0
        self._sum: np.ndarray | None = None

    def add(self, probs: np.ndarray) -> None:
        probs = np.asarray(probs, dtype=np.float64)  # float64: sums of many members stay exact
        self._sum = probs.copy() if self._sum is None else self._sum + probs
        self.size += 1

    @property
    def probs(self) -> np.ndarray:
        if self.size == 0:
            raise ValueError("the ensemble is empty")
        return self._sum / self.size

    def metrics(self, labels: np.ndarray, ece_bins: int = utils.ECE_BINS) -> dict:
        """``nll``, ``accuracy`` (percent) and ``ece`` of the mean probabilities."""
        return utils.prediction_metrics(self.probs, labels, ece_bins)

    def state(self) -> dict:
        """For a checkpoint: the sum and the number of members."""
        return {"size": self.size, "sum": None if self._sum is None else torch.from_numpy(self._sum)}

    def load_state(self, state: dict) -> None:
        self.size = int(state["size"])
        self._sum = None if state["sum"] is None else state["sum"].numpy().copy()


class LogitEnsemble:
    """learning-subspaces' ensemble: the argmax of its members' summed logits ``(N, classes)``.

    Its trainers/ensemble.py and eval_one_dim_subspaces.py predict ``(out_0 + out_1 + ...).argmax``;
    simplex_ensembles.py takes the NLL and the ECE of softmax(mean logits), and so does this
    class (the mean's argmax is the sum's). ``add`` takes logits; ``probs`` is softmax(mean).
    """

    def __init__(self):
        self.size = 0
        self._sum: np.ndarray | None = None

    def add(self, logits: np.ndarray) -> None:
        logits = np.asarray(logits, dtype=np.float64)
        self._sum = logits.copy() if self._sum is None else self._sum + logits
        self.size += 1

    @property
    def logits(self) -> np.ndarray:
        """The members' mean logits."""
        if self.size == 0:
            raise ValueError("the ensemble is empty")
        return self._sum / self.size

    @property
    def probs(self) -> np.ndarray:
        return torch.softmax(torch.from_numpy(self.logits), dim=1).numpy()

    def metrics(self, labels: np.ndarray, ece_bins: int = utils.ECE_BINS) -> dict:
        """``nll``, ``accuracy`` (percent) and ``ece`` of softmax(mean logits), the NLL from log-softmax."""
        return utils.logit_metrics(torch.from_numpy(self.logits), torch.as_tensor(labels), ece_bins)[0]

    def state(self) -> dict:
        return {"size": self.size, "sum": None if self._sum is None else torch.from_numpy(self._sum)}

    def load_state(self, state: dict) -> None:
        self.size = int(state["size"])
        self._sum = None if state["sum"] is None else state["sum"].numpy().copy()


# --combine of eval_ensemble.py: the mode-connectivity and FGE code average probabilities,
# learning-subspaces sums logits
ENSEMBLES = {"probabilities": ProbabilityEnsemble, "logits": LogitEnsemble}


# --------------------------------------------------------------------------- SWA

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


# --------------------------------------------------------------------------- pictures

def plot_ensemble_accuracy(path: str, model_acc: list[float], ens_acc: list[float],
                           title: str = "", xlabel: str = "number of snapshots") -> None:
    """A PNG of each member's test accuracy and the growing ensemble's, against its size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = np.arange(1, len(ens_acc) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    ax.plot(sizes, ens_acc, "-o", color="tab:red", markersize=4, label="ensemble")
    # hollow and on top, so that a member as accurate as the ensemble stays visible
    ax.plot(sizes, model_acc, "o", color="tab:gray", markerfacecolor="none", markersize=9, label="single model")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    if title:
        ax.set_title(title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
