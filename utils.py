"""Training and evaluation loops, BatchNorm update, schedules, checkpoints and run records.

Importable from your own code: nothing here parses arguments or prints tables.
The loops never call ``.item()`` per step (a host sync); figures are summed on
the device and read once per epoch.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shlex
import sys
import tempfile
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from errors import DivergedError, UserError


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device | str, amp: bool):
    """bfloat16 autocast on CPU or GPU when ``amp``, else a no-op context."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp)


# --------------------------------------------------------------------------- schedules

def learning_rate_schedule(base_lr: float, epoch: int, epochs: int) -> float:
    """The papers' schedule: lr for the first 50% of epochs, then linear down to
    1% of lr at 90%, then constant.

    ``epoch`` counts from 1, as the mode-connectivity code's loop does
    (``for epoch in range(1, epochs + 1)``, ``alpha = epoch / epochs``): epoch 1 of
    200 has progress 0.005, and the decay starts after epoch 100, not 101.
    """
    progress = epoch / epochs
    if progress <= 0.5:
        factor = 1.0
    elif progress <= 0.9:
        factor = 1.0 - (progress - 0.5) / 0.4 * 0.99
    else:
        factor = 0.01
    return base_lr * factor


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# --------------------------------------------------------------------------- loops

def train_epoch(model: Callable, batches: Iterable, optimizer: torch.optim.Optimizer, *,
                lr_fn: Callable[[float], float] | None = None,
                regularizer: Callable[[], torch.Tensor] | None = None,
                amp: bool = False) -> dict:
    """One pass over ``batches`` (a Loader, or a progress bar wrapping one).

    ``lr_fn(fraction)``, if given, sets the learning rate before each step from the
    fraction of the epoch done (0 at the first batch), for per-iteration schedules
    such as FGE's. ``regularizer()``, if given, is added to the loss after each
    forward pass (a curve's L2 term at the t that forward sampled). Returns the
    mean ``loss`` (with the regulariser), ``nll`` and ``accuracy`` (percent).
    Raises DivergedError if the loss became NaN or infinite.
    """
    if isinstance(model, nn.Module):
        model.train()
    num_batches = len(batches)
    sums, seen = None, 0  # (loss, nll, correct) summed on the device: no sync per step
    for i, (x, y) in enumerate(batches):
        if lr_fn is not None:
            set_learning_rate(optimizer, lr_fn(i / num_batches))
        with autocast(x.device, amp):
            logits = model(x)
        nll = F.cross_entropy(logits.float(), y)
        loss = nll if regularizer is None else nll + regularizer()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            n = len(y)
            batch = torch.stack([loss.detach() * n, nll.detach() * n,
                                 (logits.argmax(1) == y).sum().float()])
            sums = batch if sums is None else sums + batch
            seen += n
    loss_total, nll_total, correct = sums.tolist()  # the one sync of the epoch
    if not math.isfinite(loss_total):
        raise DivergedError(f"the training loss became {loss_total}")
    return {"loss": loss_total / seen, "nll": nll_total / seen, "accuracy": 100.0 * correct / seen}


@torch.inference_mode()
def predict_logits(model: Callable, loader: Iterable, amp: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (float32) and labels of every example of ``loader``, in order, on the loader's device."""
    if isinstance(model, nn.Module):
        model.eval()
    logits, labels = [], []
    for x, y in loader:
        with autocast(x.device, amp):
            logits.append(model(x).float())
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def predict(model: Callable, loader: Iterable, amp: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities ``(N, classes)`` and labels ``(N,)`` as numpy arrays."""
    logits, labels = predict_logits(model, loader, amp)
    return F.softmax(logits, dim=1).cpu().numpy(), labels.cpu().numpy()


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the mean over equal-width confidence bins of |accuracy - confidence|,
    weighted by the fraction of examples in the bin (Guo et al., 2017). In [0, 1]."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    # bin b holds confidences in (b/bins, (b+1)/bins]
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def prediction_metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """NLL, accuracy (percent) and ECE of predicted probabilities, e.g. an ensemble's mean."""
    picked = probs[np.arange(len(labels)), labels]
    return {
        "nll": float(-np.log(np.clip(picked, 1e-12, None)).mean()),
        "accuracy": float(100.0 * (probs.argmax(1) == labels).mean()),
        "ece": expected_calibration_error(probs, labels),
    }


def evaluate_with_predictions(model: Callable, loader: Iterable, amp: bool = False
                              ) -> tuple[dict, np.ndarray, np.ndarray]:
    """``nll``, ``accuracy`` (percent) and ``ece``, with the softmax probabilities and labels
    behind them (numpy), for callers that also ensemble the predictions."""
    logits, labels = predict_logits(model, loader, amp)
    nll = F.cross_entropy(logits, labels).item()
    probs, labels = F.softmax(logits, dim=1).cpu().numpy(), labels.cpu().numpy()
    metrics = prediction_metrics(probs, labels)
    metrics["nll"] = nll  # from the logits: exact even where a probability underflows
    return metrics, probs, labels


def evaluate(model: Callable, loader: Iterable, *, regularizer: Callable[[], torch.Tensor] | None = None,
             amp: bool = False) -> dict:
    """``loss`` (NLL plus the regulariser, if any), ``nll``, ``accuracy`` (percent) and ``ece``."""
    metrics = evaluate_with_predictions(model, loader, amp)[0]
    nll = metrics["nll"]
    extra = 0.0
    if regularizer is not None:
        with torch.no_grad():
            extra = float(regularizer())
    return {"loss": nll + extra, **metrics}


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@torch.inference_mode()
def update_bn(model: nn.Module, loader: Iterable, forward: Callable | None = None, amp: bool = False) -> None:
    """Recompute the BatchNorm running statistics of ``model`` with one pass over ``loader``.

    The statistics become the average of the per-batch statistics, weighted by batch
    size: before a batch of b examples, after n examples already seen, each layer's
    momentum is set to b / (n + b), so that ``running = (n * running + b * batch) / (n + b)``.
    That is exact for a short last batch too, where ``torch.optim.swa_utils.update_bn``
    (momentum None) weights every batch equally. ``forward(x)`` runs the network
    (default ``model``), so a curve at a fixed t, or any callable, can be used.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return
    was_training = model.training
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
    model.train()
    forward = forward or model
    seen = 0
    for x, _ in loader:
        b = len(x)
        for m in layers:
            m.momentum = b / (seen + b)
        with autocast(x.device, amp):
            forward(x)
        seen += b
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.train(was_training)


# --------------------------------------------------------------------------- checkpoints

def checkpoint_path(directory: str, epoch: int, prefix: str = "checkpoint") -> str:
    return os.path.join(directory, f"{prefix}-{epoch}.pt")


def save_checkpoint(path: str, state: dict) -> None:
    """Write ``state`` to ``path`` atomically, so that a run killed at any moment leaves the old file intact."""
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str, kind: str | None = None, model: str | None = None,
                    num_classes: int | None = None) -> dict:
    """Read a checkpoint written by this project, checking what the caller expects.

    Every mismatch is a UserError naming the file: missing or unreadable, not one
    of ours, the wrong ``kind`` ('model' or 'curve'), another ``model`` or another
    number of classes.
    """
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, not a torch file, permissions, ...
        raise UserError(f"cannot read checkpoint {path}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    if not isinstance(ckpt, dict) or "kind" not in ckpt or "model_state" not in ckpt:
        raise UserError(f"{path} is not a checkpoint written by this project")
    if kind is not None and ckpt["kind"] != kind:
        raise UserError(f"{path} is a {ckpt['kind']!r} checkpoint, but a {kind!r} checkpoint is needed")
    if model is not None and ckpt["model"] != model:
        raise UserError(f"{path} holds a {ckpt['model']} model, not {model}")
    if num_classes is not None and ckpt["num_classes"] != num_classes:
        raise UserError(f"{path} has {ckpt['num_classes']} classes, but the data have {num_classes}")
    return ckpt


def model_checkpoint(model_name: str, model: nn.Module, *, num_classes: int, model_kwargs: dict,
                     dataset: str, transform: str, epoch: int, optimizer=None, args: dict | None = None,
                     **extra) -> dict:
    """A 'model' checkpoint: everything needed to rebuild ``model`` and to resume its training."""
    return {
        "kind": "model", "model": model_name, "model_kwargs": dict(model_kwargs),
        "num_classes": num_classes, "dataset": dataset, "transform": transform, "epoch": epoch,
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "use_test": (args or {}).get("use_test"), "args": dict(args or {}), "rng_state": rng_state(), **extra,
    }


def model_from_checkpoint(ckpt: dict, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a 'model' checkpoint's network with its weights and BatchNorm statistics."""
    from models import build_model

    model = build_model(ckpt["model"], ckpt["num_classes"], **ckpt["model_kwargs"])
    model.load_state_dict(ckpt["model_state"])
    return model.to(device)


def rng_state() -> dict:
    """The global random states that training consumes (dropout, curve t), for exact resume."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- run records

class RunRecord:
    """The files every run writes in its folder: command.sh, args.json, metrics.csv, summary.json.

    ``resume_epoch``: when a run resumes from the end of that epoch, rows of
    metrics.csv after it (written before the interruption) are dropped, so the
    file ends up as an uninterrupted run's.
    """

    def __init__(self, directory: str, args: dict, resume_epoch: int | None = None,
                 metrics_file: str = "metrics.csv"):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.metrics_path = os.path.join(directory, metrics_file)
        command = shlex.join([os.path.basename(sys.executable)] + sys.argv)
        _write_atomic(os.path.join(directory, "command.sh"), "#!/bin/sh\n" + command + "\n")
        _write_atomic(os.path.join(directory, "args.json"), json.dumps(args, indent=2, default=str) + "\n")
        self._rows: list[dict] = []
        if resume_epoch is not None and os.path.isfile(self.metrics_path):
            with open(self.metrics_path, newline="") as f:
                self._rows = [r for r in csv.DictReader(f) if int(r.get("epoch", 0)) <= resume_epoch]
        self._write_metrics()

    def log(self, row: dict) -> None:
        """Add one row (an epoch, a curve point) to metrics.csv."""
        self._rows.append(row)
        self._write_metrics()

    def _write_metrics(self) -> None:
        if not self._rows:
            if os.path.exists(self.metrics_path):
                os.remove(self.metrics_path)
            return
        fields = list(dict.fromkeys(k for row in self._rows for k in row))
        with atomic_open(self.metrics_path) as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self._rows)

    def summary(self, figures: dict) -> None:
        """Write summary.json, the run's final figures; done last."""
        _write_atomic(os.path.join(self.directory, "summary.json"), json.dumps(figures, indent=2) + "\n")


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
    """Open a temporary file beside ``path`` for writing; on success it is renamed to ``path``.

    A reader, or a run killed at any moment, sees either the old file or the new one,
    never half of one. ``mode`` is "w" (text) or "wb".
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _write_atomic(path: str, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)
