"""The evaluation of one point of weight space: BatchNorm recomputed for its weights, then its figures.

Every script that evaluates points uses these: eval_curve.py along a curve or segment, plane.py
over a plane, train_curve.py and train_subspace.py at a curve's or subspace's points, simplex.py
at a simplex's. A point's BatchNorm statistics are not part of the weights: they are recomputed
with one pass over training images for every point evaluated (``utils.update_bn``). Where those
images are augmented, the pass's draws are numbered (``draw``), so that each pass gets its own
crops and flips and a rerun the same ones.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn as nn

import utils


def recompute_batchnorm(module: nn.Module, forward: Callable, loader, amp=None, draw: int = 0) -> None:
    """The BatchNorm statistics of the weights ``forward`` runs, from one pass over ``loader``
    (its augmentation draws number ``draw``); then ``module`` in evaluation mode. Without
    BatchNorm only the latter."""
    if utils.has_batchnorm(module):
        loader.set_epoch(draw)
        utils.update_bn(module, loader, forward=forward, amp=amp)
    module.eval()  # utils.evaluate puts only nn.Modules in eval mode, and curve.at(t) is not one


def evaluate_weights(module: nn.Module, forward: Callable, train_loader, test_loader, *, l2: float = 0.0,
                     amp=None, draw: int = 0, logits: bool = False) -> tuple[dict, np.ndarray]:
    """The figures of the weights ``forward`` runs (``module`` holds their BatchNorm layers), and the
    test probabilities (N, classes) behind them (their logits with ``logits``).

    ``train_loader`` serves the BatchNorm update (pass ``2 * draw``) and the train figures (pass
    ``2 * draw + 1``); ``l2`` (the weights' 0.5 * wd * ||w||^2) joins both losses.
    """
    recompute_batchnorm(module, forward, train_loader, amp, 2 * draw)
    train_loader.set_epoch(2 * draw + 1)
    train = utils.evaluate(forward, train_loader, amp=amp)
    test, probs, _ = utils.evaluate_with_predictions(forward, test_loader, amp=amp, logits=logits)
    return {"tr_loss": train["nll"] + l2, "tr_nll": train["nll"], "tr_acc": train["accuracy"],
            "tr_err": 100.0 - train["accuracy"], "te_loss": test["nll"] + l2, "te_nll": test["nll"],
            "te_acc": test["accuracy"], "te_err": 100.0 - test["accuracy"]}, probs


def evaluate_point(model, point, train_loader, test_loader, wd: float, amp=None,
                   draw: int = 0, logits: bool = False) -> tuple[dict, np.ndarray]:
    """``evaluate_weights`` at a point of a curve or subspace (``curves.SubspaceModel``): a curve's t
    or a coefficient vector, with the train loss's L2 term 0.5 * wd * ||phi(point)||^2."""
    forward = model.at(point)  # phi(point) computed once for all the batches below
    with torch.no_grad():
        l2 = float(model.l2(wd, point))
    figures, probs = evaluate_weights(model, forward, train_loader, test_loader, l2=l2, amp=amp, draw=draw,
                                      logits=logits)
    return {"t": point, **figures}, probs


def point_predictions(model, point, loader, bn_loader, amp=None, draw: int = 0, ece_bins: int = utils.ECE_BINS,
                      logits: bool = False):
    """NLL, accuracy and ECE (``ece_bins`` bins) of a curve or subspace at ``point`` on ``loader``,
    with the probabilities (or, with ``logits``, the logits) and labels behind them; BatchNorm
    recomputed there first on ``bn_loader`` (its augmentation draws number ``draw``)."""
    forward = model.at(point)
    recompute_batchnorm(model, forward, bn_loader, amp, draw)
    return utils.evaluate_with_predictions(forward, loader, amp=amp, ece_bins=ece_bins, logits=logits)


def evaluate_at(model, point, loader, bn_loader, amp=None, draw: int = 0, ece_bins: int = utils.ECE_BINS) -> dict:
    """``point_predictions``' figures alone (and ``loss``, the NLL)."""
    metrics = point_predictions(model, point, loader, bn_loader, amp, draw, ece_bins)[0]
    return {"loss": metrics["nll"], **metrics}
