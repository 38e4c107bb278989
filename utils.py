"""Training and evaluation loops, BatchNorm update, learning-rate schedules and metrics.

Importable from your own code: nothing here parses arguments or prints tables.
The loops never call ``.item()`` per step (a host sync); figures are summed on
the device and read once per epoch.
"""
from __future__ import annotations

import contextlib
import itertools
import math
from typing import Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from runtime.errors import DivergedError


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device | str, amp: bool | torch.dtype | None):
    """Autocast on CPU or GPU: ``amp`` True means bfloat16, a dtype that dtype (bfloat16 or
    float16); False or None a no-op context."""
    device_type = torch.device(device).type
    dtype = torch.bfloat16 if amp is True else amp
    return torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=bool(amp))


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


def cosine_learning_rate(base_lr: float, epoch: int, epochs: int, warmup: int = 0) -> float:
    """Cosine decay per epoch (``epoch`` from 0), after ``warmup`` epochs of linear warm-up.

    Learning-subspaces' ``cosine_lr`` (schedulers.py): base_lr * (epoch + 1) / warmup during the
    warm-up, then 0.5 * (1 + cos(pi * (epoch - warmup) / (epochs - warmup))) * base_lr, set once
    at the start of each epoch. Without warm-up it is torch's CosineAnnealingLR(T_max=epochs)
    stepped once an epoch, as loss-surface-simplexes trains its networks and each new vertex.
    """
    if epoch < warmup:
        return base_lr * (epoch + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup))) * base_lr


def sgd(parameters, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> torch.optim.SGD:
    """``torch.optim.SGD``, fused where torch has the kernel (CPU and CUDA): one pass over each
    parameter for weight decay, momentum and update instead of four (2.4x faster on a 2-core
    CPU for 16M parameters). The same update; now and then an element rounds differently in
    its last bit (the kernel's scalar tail, for tensors shorter than a vector), which training
    then carries on, as it does any rounding. Memory passes are most of an optimizer step, and
    a learned line has twice a network's parameters to update."""
    parameters = list(parameters)
    fused = bool(parameters) and all(p.device.type in ("cpu", "cuda") for p in parameters)
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused or None)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# --------------------------------------------------------------------------- loops

class Interrupted(Exception):
    """An epoch stopped early at ``step`` (a signal asked for it): ``partial`` holds the
    figures summed so far over all processes, to hand to the resumed epoch."""

    def __init__(self, step: int, partial: list[float]):
        super().__init__(f"interrupted at step {step}")
        self.step, self.partial = step, partial


def train_epoch(model: Callable, loader: Iterable, optimizer: torch.optim.Optimizer, *,
                lr_fn: Callable[[float], float] | None = None,
                regularizer: Callable[[], torch.Tensor] | None = None,
                amp: bool | torch.dtype | None = False, scaler=None, start_step: int = 0,
                partial: list[float] | None = None, should_stop: Callable[[], bool] | None = None,
                progress: Callable[[Iterable], Iterable] | None = None, samples: int = 1) -> dict:
    """One pass over ``loader`` (a ``data.Loader``, or any iterable of ``(x, y)`` batches).

    ``lr_fn(fraction)``, if given, sets the learning rate before each step from the
    fraction of the epoch done (0 at the first batch), for per-iteration schedules
    such as FGE's. ``regularizer()``, if given, is added to the loss once per step,
    after the forward pass (a curve's L2 term at the t that forward sampled). ``scaler``:
    a ``torch.amp.GradScaler`` for float16. Returns the mean ``loss`` (with the
    regulariser), ``nll`` and ``accuracy`` (percent) over all processes' images.

    ``samples`` k > 1 (SPRO's points per step): the batch goes through ``model`` k times
    (a subspace draws a new point at each call) and the loss is the mean of the k NLLs,
    with a backward after each forward, so that only one graph is held at a time; the
    regulariser joins the last one (a term of the point, such as a curve's L2, is then
    that of the last point: as unbiased an estimate of its mean over points as the mean
    of k). Under DistributedDataParallel the gradients are exchanged once, at the last
    backward. The figures are means over the k passes.

    Data parallelism: each process gets its share of every global batch of N images.
    DistributedDataParallel averages the processes' gradients, so each process's loss is
    its summed NLL times (world size / N): the average is then the gradient of the global
    batch's mean NLL, also for a short last batch split unevenly.

    Resuming within an epoch: ``start_step`` batches are skipped and ``partial`` (from
    ``Interrupted``) holds their figures. ``should_stop()`` is asked after every step; when
    it says so, ``Interrupted`` is raised once the step is done.
    Raises DivergedError if the loss became NaN or infinite.
    """
    if isinstance(model, nn.Module):
        model.train()
    num_batches = len(loader)
    world = getattr(loader, "world_size", 1)
    batches = loader.batches(start_step) if hasattr(loader, "batches") else itertools.islice(loader, start_step, None)
    if progress is not None:
        batches = progress(batches)
    sums = None  # (loss, nll, correct, seen) summed on the device: no host sync per step
    for i, (x, y) in enumerate(batches, start_step):
        if sums is None:
            sums = torch.zeros(4, dtype=torch.float64, device=x.device)
            if partial is not None and getattr(loader, "rank", 0) == 0:  # counted once over all processes
                sums += torch.tensor(partial, dtype=torch.float64, device=x.device)
        if lr_fn is not None:
            set_learning_rate(optimizer, lr_fn(i / num_batches))
        global_n = loader.global_batch_size(i) if hasattr(loader, "global_batch_size") else len(y)
        optimizer.zero_grad(set_to_none=True)
        nll = correct = 0.0
        for k in range(samples):
            last = k == samples - 1
            with _gradient_sync(model, last):
                with autocast(x.device, amp):
                    logits = model(x)
                nll_sum = F.cross_entropy(logits.float(), y, reduction="sum")
                reg = regularizer() if regularizer is not None and last else None
                loss = nll_sum * (world / global_n / samples) + (reg if reg is not None else 0.0)
                (scaler.scale(loss) if scaler is not None else loss).backward()
            with torch.no_grad():
                nll = nll + nll_sum.detach().double() / samples
                correct = correct + (logits.argmax(1) == y).sum().double() / samples
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        with torch.no_grad():
            with_reg = nll + reg.detach().double() * len(y) if reg is not None else nll
            sums += torch.stack([with_reg, nll, correct, torch.full_like(nll, len(y))])
        if should_stop is not None and i + 1 < num_batches and should_stop():
            raise Interrupted(i + 1, _reduced(sums, world).tolist())
    if sums is None:  # nothing left to do
        sums = torch.tensor(partial or [0.0] * 4, dtype=torch.float64)
    loss_total, nll_total, correct, seen = _reduced(sums, world).tolist()  # the one sync of the epoch
    if not math.isfinite(loss_total):
        raise DivergedError(f"the training loss became {loss_total}")
    return {"loss": loss_total / seen, "nll": nll_total / seen, "accuracy": 100.0 * correct / seen}


def _gradient_sync(model, last: bool):
    """DistributedDataParallel's ``no_sync`` for all but the last backward of a step (a no-op elsewhere)."""
    if last or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


def _reduced(sums: torch.Tensor, world: int) -> torch.Tensor:
    """``sums`` added up over all processes (a copy; itself when there is one process)."""
    if world == 1:
        return sums
    total = sums.clone()
    dist.all_reduce(total)
    return total


@torch.inference_mode()
def predict_logits(model: Callable, loader: Iterable, amp: bool | torch.dtype | None = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (float32) and labels of every example of ``loader``, in order, on the loader's device.

    With several processes each evaluates its share and every process gets all the rows.
    """
    if isinstance(model, nn.Module):
        model.eval()
    logits, labels = [], []
    for x, y in loader:
        with autocast(x.device, amp):
            logits.append(model(x).float())
        labels.append(y)
    logits, labels = torch.cat(logits), torch.cat(labels)
    if getattr(loader, "world_size", 1) > 1:
        positions = loader.local_positions().to(logits.device)
        logits = gather_rows(logits, positions, loader.num_images)
        labels = gather_rows(labels, positions, loader.num_images)
    return logits, labels


def gather_rows(local: torch.Tensor, positions: torch.Tensor, total: int) -> torch.Tensor:
    """The ``total`` rows that the processes hold between them, each its ``local`` rows at
    ``positions``, assembled on every process (all_gather needs equal sizes: rows are padded)."""
    world = dist.get_world_size()
    sizes = [torch.zeros((), dtype=torch.long, device=local.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor(len(local), device=local.device))
    longest = int(max(sizes))
    pad = longest - len(local)
    padded = torch.cat([local, local.new_zeros((pad,) + local.shape[1:])])
    where = torch.cat([positions, positions.new_zeros(pad)])
    rows = [torch.empty_like(padded) for _ in range(world)]
    places = [torch.empty_like(where) for _ in range(world)]
    dist.all_gather(rows, padded)
    dist.all_gather(places, where)
    out = local.new_empty((total,) + local.shape[1:])
    for block, place, size in zip(rows, places, sizes):
        out[place[:int(size)]] = block[:int(size)]
    return out


def predict(model: Callable, loader: Iterable, amp: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities ``(N, classes)`` and labels ``(N,)`` as numpy arrays."""
    logits, labels = predict_logits(model, loader, amp)
    return F.softmax(logits, dim=1).cpu().numpy(), labels.cpu().numpy()


ECE_BINS = 15  # the library's default; each script sets its own (--ece_bins), see the README


def confidence_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """The equal-width confidence bins of ECE (and of a reliability diagram). The confidence is the
    largest probability; its bin is min(floor(confidence * bins), bins - 1), learning-subspaces'
    rule (trainers/default.py, M = 20 there): bin b holds [b/bins, (b+1)/bins), the last one 1.0 as
    well. Per bin: ``count``, mean ``confidence`` and ``accuracy`` (fractions; NaN where the bin is
    empty), and the bins' ``edges``."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    which = np.minimum(np.floor(confidence * bins).astype(int), bins - 1)
    count = np.zeros(bins, dtype=np.int64)
    mean_confidence, accuracy = np.full(bins, np.nan), np.full(bins, np.nan)
    for b in range(bins):
        mask = which == b
        if mask.any():
            count[b] = mask.sum()
            mean_confidence[b], accuracy[b] = confidence[mask].mean(), correct[mask].mean()
    return {"count": count, "confidence": mean_confidence, "accuracy": accuracy,
            "edges": np.linspace(0.0, 1.0, bins + 1)}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the mean over equal-width confidence bins (``confidence_bins``) of |accuracy - confidence|,
    weighted by the fraction of examples in the bin (Guo et al., 2017). In [0, 1]. learning-subspaces'
    sum of |sum of hits - sum of confidences| over the bins, divided by N, is this weighted mean."""
    b = confidence_bins(probs, labels, bins)
    ece = 0.0
    for count, confidence, accuracy in zip(b["count"], b["confidence"], b["accuracy"]):
        if count:
            ece += count / len(labels) * abs(accuracy - confidence)
    return float(ece)


def prediction_metrics(probs: np.ndarray, labels: np.ndarray, ece_bins: int = ECE_BINS) -> dict:
    """NLL, accuracy (percent) and ECE of predicted probabilities, e.g. an ensemble's mean."""
    picked = probs[np.arange(len(labels)), labels]
    return {
        "nll": float(-np.log(np.clip(picked, 1e-12, None)).mean()),
        "accuracy": float(100.0 * (probs.argmax(1) == labels).mean()),
        "ece": expected_calibration_error(probs, labels, ece_bins),
    }


def logit_metrics(logits: torch.Tensor, labels: torch.Tensor, ece_bins: int = ECE_BINS
                  ) -> tuple[dict, np.ndarray, np.ndarray]:
    """``prediction_metrics`` of softmax(logits), the NLL from the logits (exact even where a
    probability underflows), with the probabilities and labels as numpy arrays."""
    nll = F.cross_entropy(logits, labels).item()
    probs, labels = F.softmax(logits, dim=1).cpu().numpy(), labels.cpu().numpy()
    metrics = prediction_metrics(probs, labels, ece_bins)
    metrics["nll"] = nll
    return metrics, probs, labels


def evaluate_with_predictions(model: Callable, loader: Iterable, amp: bool = False, ece_bins: int = ECE_BINS,
                              logits: bool = False) -> tuple[dict, np.ndarray, np.ndarray]:
    """``nll``, ``accuracy`` (percent) and ``ece``, with the softmax probabilities and labels
    behind them (numpy), for callers that also ensemble the predictions; with ``logits`` the
    logits (numpy, float32) in place of the probabilities (for an ensemble of logits)."""
    raw, labels = predict_logits(model, loader, amp)
    metrics, probs, labels = logit_metrics(raw, labels, ece_bins)
    return metrics, (raw.float().cpu().numpy() if logits else probs), labels


def evaluate(model: Callable, loader: Iterable, *, regularizer: Callable[[], torch.Tensor] | None = None,
             amp: bool = False, ece_bins: int = ECE_BINS) -> dict:
    """``loss`` (NLL plus the regulariser, if any), ``nll``, ``accuracy`` (percent) and ``ece``."""
    metrics = evaluate_with_predictions(model, loader, amp, ece_bins)[0]
    nll = metrics["nll"]
    extra = 0.0
    if regularizer is not None:
        with torch.no_grad():
            extra = float(regularizer())
    return {"loss": nll + extra, **metrics}


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def update_bn(model: nn.Module, loader: Iterable, forward: Callable | None = None,
              amp: bool | torch.dtype | None = False) -> None:
    """Recompute the BatchNorm running statistics of ``model`` with one pass over ``loader``.

    The statistics become the average of the per-batch statistics, weighted by batch
    size: before a batch of b examples, after n examples already seen, each layer's
    momentum is set to b / (n + b), so that ``running = (n * running + b * batch) / (n + b)``.
    That is exact for a short last batch too, where ``torch.optim.swa_utils.update_bn``
    (momentum None) weights every batch equally. ``forward(x)`` runs the network
    (default ``model``), so a curve at a fixed t, or any callable, can be used.

    With several processes, each global batch is normalised with, and counted by, its
    statistics over all processes' shares (``_synced``), so the result is one process's.
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
    synced = getattr(loader, "world_size", 1) > 1
    if synced:
        for m in layers:
            m.forward = _synced(m)  # an instance attribute: the class's forward is untouched
    seen = 0
    try:
        with torch.inference_mode():
            for step, (x, _) in enumerate(loader):
                b = loader.global_batch_size(step) if hasattr(loader, "global_batch_size") else len(x)
                for m in layers:
                    m.momentum = b / (seen + b)
                with autocast(x.device, amp):
                    forward(x)
                seen += b
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
            m.__dict__.pop("forward", None)
        model.train(was_training)


def _synced(bn: nn.modules.batchnorm._BatchNorm) -> Callable:
    """A training-mode forward for ``bn`` over the global batch that the processes share:
    the per-channel sum, sum of squares and count are added up over all processes (in
    float64, so E[x^2] - E[x]^2 keeps its precision); the batch is normalised with the
    global mean and biased variance, and the running statistics take the global mean and
    unbiased variance, as BatchNorm does for one process. (torch's SyncBatchNorm does the
    same, but on GPUs only; this serves the BatchNorm update on any device.)"""
    def forward(x: torch.Tensor) -> torch.Tensor:
        channels, dims = x.shape[1], [0] + list(range(2, x.dim()))
        x64 = x.double()
        stats = torch.cat([x64.sum(dims), (x64 * x64).sum(dims), x64.new_full((1,), x.numel() / channels)])
        dist.all_reduce(stats)
        count = stats[-1]
        mean = stats[:channels] / count
        var = (stats[channels:2 * channels] / count - mean * mean).clamp(min=0)
        m = bn.momentum
        bn.running_mean.mul_(1 - m).add_(mean.to(bn.running_mean.dtype), alpha=m)
        bn.running_var.mul_(1 - m).add_((var * count / (count - 1).clamp(min=1)).to(bn.running_var.dtype), alpha=m)
        bn.num_batches_tracked.add_(1)
        return F.batch_norm(x, mean.float(), var.float(), bn.weight, bn.bias, False, 0.0, bn.eps)
    return forward
