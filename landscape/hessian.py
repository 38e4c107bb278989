"""The Hessian of a network's loss: Hessian-vector products, top eigenvalues, the trace.

H is the Hessian, with respect to all the model's parameters, of the mean cross-entropy
over a fixed set of images, the model in evaluation mode (BatchNorm normalises with its
running statistics; dropout is off), without a weight-decay term: PyHessian's setting
(amirgholami/PyHessian, Yao et al. 2020), whose rules the estimators follow.

    op = HessianOperator(model, batches)          # batches: [(x, y), ...], the images in chunks
    hv = op(v)                                    # H v, v a flat vector in named_parameters() order
    eigen = top_eigenvalues(op, op.like(), k=3)   # power iteration with deflation, descending
    trace = hutchinson_trace(op, op.like())       # Rademacher probes, with the standard error

Products come from torch.func (no custom autograd): the gradient of the loss as a function
of the parameters, ``grad(loss)``, and its vector-Jacobian product (reverse over reverse;
H is symmetric, so v^T H = (H v)^T). The mean over M images in chunks is exact: H v is the
sum over chunks of (n_c / M) H_c v, H_c the Hessian of chunk c's mean. With
``retain_graphs`` (the default) each chunk's gradient graph is built once and kept, as
PyHessian keeps its single batch's, and every product is one pass back through it: 1.8-1.9x
an fp32 training step's time (ConvFC, batch 128, scripts/bench.py's hvp_over_train_step on a
2-core CPU) instead of 2.7-3.0x to rebuild it. The memory is then that of every chunk's
graph; without it, that of one chunk.

Nothing here parses arguments or prints.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vjp

# PyHessian's defaults: hessian.eigenvalues(maxIter=100, tol=1e-3), hessian.trace(maxIter=100, tol=1e-3),
# and the 1e-6 that keeps its relative changes finite near 0
MAX_ITER, TOL, RELATIVE_EPS = 100, 1e-3, 1e-6

Progress = Callable[[Iterable, str], Iterable]


class HessianOperator:
    """``v -> H v`` for the mean cross-entropy of ``model`` over the images of ``batches``
    (an iterable of ``(x, y)`` chunks on the model's device), at the model's current weights.

    Vectors are flat, in ``named_parameters()`` order (``flatten``/``unflatten`` convert to
    and from dicts by name). The model is put in evaluation mode; its parameters and buffers
    are copied (the operator keeps the Hessian at the weights it was made at), never changed.
    """

    def __init__(self, model: nn.Module, batches: Iterable, retain_graphs: bool = True):
        model.eval()
        self.model = model
        self.names = [name for name, _ in model.named_parameters()]
        # copies: the operator is the Hessian at these weights, whatever happens to the model later
        self.params = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
        self.batches = [(x, y) for x, y in batches]
        self.num_images = sum(len(y) for _, y in self.batches)
        if self.num_images == 0:
            raise ValueError("the Hessian needs at least one image")
        self.numel = sum(p.numel() for p in self.params.values())
        self.products = [self._product(x, y) for x, y in self.batches] if retain_graphs else None

    def loss(self, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean cross-entropy of the model with ``params`` (by name) on one chunk."""
        self.model.eval()  # functional_call runs the module as it is set: running statistics
        return F.cross_entropy(functional_call(self.model, {**params, **self.buffers}, (x,)), y)

    def _product(self, x, y) -> Callable:
        """``u -> H_c u`` for chunk (x, y): the vjp of the gradient, its graph built now."""
        _, product = vjp(grad(lambda p: self.loss(p, x, y)), self.params)
        return product

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        u = self.unflatten(v)
        hv = torch.zeros_like(v)
        for c, (x, y) in enumerate(self.batches):
            product = self.products[c] if self.products is not None else self._product(x, y)
            (hc,) = product(u)
            hv.add_(self.flatten(hc), alpha=len(y) / self.num_images)
        return hv

    def flatten(self, tensors: dict) -> torch.Tensor:
        return torch.cat([tensors[name].reshape(-1) for name in self.names])

    def unflatten(self, v: torch.Tensor) -> dict:
        parts = v.split([self.params[name].numel() for name in self.names])
        return {name: part.view_as(self.params[name]) for name, part in zip(self.names, parts)}

    def like(self) -> torch.Tensor:
        """A flat zero vector of the parameters' size, dtype and device (for the estimators)."""
        p = next(iter(self.params.values()))
        return torch.zeros(self.numel, dtype=p.dtype, device=p.device)


# --------------------------------------------------------------------------- vector helpers

def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    # float64: a float32 sum over millions of terms of both signs (a Rademacher v^T H v) loses digits
    return float(torch.dot(a.double(), b.double()))


def _normalized(v: torch.Tensor) -> torch.Tensor:
    """v / ||v|| (PyHessian divides by ||v|| + 1e-6, which shrinks v, and so the Rayleigh
    quotient, where ||H v|| is small); a zero vector stays zero."""
    length = math.sqrt(_dot(v, v))
    return v / length if length > 0 else v


def _generator(seed: int | torch.Generator) -> torch.Generator:
    return seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))


def _wrap(progress: Progress | None, iterable, desc: str):
    return progress(iterable, desc) if progress is not None else iterable


# --------------------------------------------------------------------------- top eigenvalues

@dataclass
class Eigen:
    value: float
    vector: torch.Tensor = field(repr=False)
    iterations: int = 0
    converged: bool = False


def top_eigenvalues(hvp: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor, k: int = 1,
                    max_iter: int = MAX_ITER, tol: float = TOL, seed: int | torch.Generator = 0,
                    progress: Progress | None = None) -> list[Eigen]:
    """The ``k`` top eigenvalues of the symmetric operator ``hvp``, descending, by power iteration
    with deflation: PyHessian's ``hessian.eigenvalues``.

    For each eigenvalue in turn: a Gaussian start vector, normalised; then, up to ``max_iter``
    times, v is made orthogonal to the eigenvectors already found (Gram-Schmidt) and
    normalised, the estimate is the Rayleigh quotient v^T H v, and v becomes H v / ||H v||;
    it stops when the estimate changes by less than ``tol`` relative to the previous one
    (|new - old| / (|old| + 1e-6) < tol). Power iteration finds the eigenvalues largest in
    magnitude: at a minimum those are the top ones (a negative eigenvalue larger in magnitude
    than the k-th positive one would be found instead). The k values are returned sorted.
    ``like``: a vector of the operator's size, dtype and device; the draws are on the CPU.
    """
    if k < 1 or max_iter < 1:
        raise ValueError("k and max_iter must be at least 1")
    g = _generator(seed)
    found: list[Eigen] = []
    for index in range(k):
        v = _normalized(torch.randn(like.shape, generator=g).to(like.device, like.dtype))
        estimate, converged, iterations = None, False, 0
        for iterations in _wrap(progress, range(1, max_iter + 1), f"eigenvalue {index + 1}"):
            for other in found:  # deflation: stay orthogonal to the eigenvectors found
                v = v - _dot(v, other.vector) * other.vector
            v = _normalized(v)
            hv = hvp(v)
            new = _dot(hv, v)
            v = _normalized(hv)
            if estimate is not None and abs(estimate - new) / (abs(estimate) + RELATIVE_EPS) < tol:
                estimate, converged = new, True
                break
            estimate = new
        found.append(Eigen(estimate, v, iterations, converged))
    return sorted(found, key=lambda e: e.value, reverse=True)


# --------------------------------------------------------------------------- trace

@dataclass
class Trace:
    estimate: float  # the mean of the samples
    stderr: float  # their standard deviation over sqrt(their number); nan for one sample
    samples: list[float]
    converged: bool


def rademacher(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Entries -1 or +1 with probability 1/2 each (PyHessian: randint(0, 2), zeros set to -1)."""
    bits = torch.randint(0, 2, like.shape, generator=generator)
    return (bits * 2 - 1).to(like.device, like.dtype)


def hutchinson_trace(hvp: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor, max_iter: int = MAX_ITER,
                     tol: float = TOL, seed: int | torch.Generator = 0, progress: Progress | None = None) -> Trace:
    """Hutchinson's estimate of tr(H): the mean of v^T H v over Rademacher vectors v (E[v v^T] = I),
    with PyHessian's stopping rule (``hessian.trace``): after each sample, stop when the running
    mean changed by less than ``tol`` relative to the previous mean (|new - old| / (|old| + 1e-6);
    the mean before the first sample counts as 0), else go on up to ``max_iter`` samples.
    """
    if max_iter < 1:
        raise ValueError("max_iter must be at least 1")
    g = _generator(seed)
    samples: list[float] = []
    mean, converged = 0.0, False
    for _ in _wrap(progress, range(max_iter), "trace"):
        v = rademacher(like, g)
        samples.append(_dot(hvp(v), v))
        new = math.fsum(samples) / len(samples)
        if abs(new - mean) / (abs(mean) + RELATIVE_EPS) < tol:
            mean, converged = new, True
            break
        mean = new
    n = len(samples)
    stderr = math.nan
    if n > 1:
        variance = math.fsum((s - mean) ** 2 for s in samples) / (n - 1)
        stderr = math.sqrt(variance / n)
    return Trace(mean, stderr, samples, converged)
