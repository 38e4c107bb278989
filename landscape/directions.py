"""Directions in weight space, points along them, and the width of a minimum along a ray.

A direction (and a point's weights) is a dict ``parameter name -> tensor`` over a module's
``named_parameters()``: matched by name, never by order. BatchNorm's running statistics are
buffers, not parameters: they are no direction's part (they are recomputed at each point).

    w = weights(model)
    d = sphere_direction(model, seed=1)              # uniform on the unit sphere of all weights
    e = filter_normalized_direction(model, seed=2)   # Li et al. 2018
    load_weights(model, combine(w, (0.5, d), (-0.2, e)))   # the model at w + 0.5 d - 0.2 e
    rows = measure_ray(evaluate, w, d, max_distance=30.0, num_points=16)
    width([r["distance"] for r in rows], [r["train_loss"] for r in rows], rise=0.1)

``evaluate(state)`` is any callable that takes a point's weights (a dict by name) and returns
its figures (a dict of floats: train loss, test error, ...); the scripts pass the shared
point evaluation (BatchNorm recomputed at the point). Nothing here parses arguments or prints.

Random draws come from a CPU generator seeded by ``seed`` (or a ``torch.Generator`` passed
instead, to draw several directions in turn), parameter by parameter in ``named_parameters()``
order, in float32: the same direction on any device.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn as nn

Direction = dict  # parameter name -> tensor shaped as the parameter
Evaluate = Callable[[Direction], Mapping[str, float]]

# net_plotter.normalize_direction's guard against a zero random filter
FILTER_EPS = 1e-10
BIAS_BN_RULES = ("zero", "weights")


# --------------------------------------------------------------------------- weights by name

def weights(model: nn.Module) -> Direction:
    """The model's parameters by name, detached copies (later changes to the model leave them)."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def combine(base: Mapping[str, torch.Tensor], *terms: tuple[float, Mapping[str, torch.Tensor]]) -> Direction:
    """``base + sum_k a_k d_k`` by name, for ``terms`` ``(a_k, d_k)``; every d_k must have base's names."""
    for _, direction in terms:
        _same_names(base, direction)
    out = {}
    for name, w in base.items():
        point = w.clone()
        for a, direction in terms:
            point.add_(direction[name].to(point.device, point.dtype), alpha=float(a))
        out[name] = point
    return out


@torch.no_grad()
def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` into the model's parameters by name, in place (memory formats are kept);
    a missing or extra name, or a wrong shape, is a ValueError. Buffers are left as they are."""
    params = dict(model.named_parameters())
    _same_names(params, state)
    for name, p in params.items():
        if tuple(state[name].shape) != tuple(p.shape):
            raise ValueError(f"parameter {name!r} has shape {tuple(state[name].shape)}, the model {tuple(p.shape)}")
        p.copy_(state[name])


def norm(direction: Mapping[str, torch.Tensor]) -> float:
    """The Euclidean norm over all the tensors together (in float64)."""
    return math.sqrt(sum(float(t.double().pow(2).sum()) for t in direction.values()))


def _same_names(a: Mapping, b: Mapping) -> None:
    if a.keys() != b.keys():
        missing, extra = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
        raise ValueError(f"the names differ: missing {missing[:5]}, unexpected {extra[:5]}")


# --------------------------------------------------------------------------- random directions

def _generator(seed: int | torch.Generator) -> torch.Generator:
    return seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))


def gaussian_direction(model: nn.Module, seed: int | torch.Generator = 0) -> Direction:
    """Independent standard normal entries, one tensor per parameter, on the parameter's device."""
    g = _generator(seed)
    return {name: torch.randn(p.shape, generator=g).to(p.device, p.dtype) for name, p in model.named_parameters()}


def sphere_direction(model: nn.Module, seed: int | torch.Generator = 0) -> Direction:
    """A direction uniform on the unit sphere of all weights (SWA paper, Figure 5's rays).

    A standard Gaussian vector is isotropic, so the Gaussian over all parameters divided by
    its norm over all of them together (not per layer) is uniform on the sphere; a step
    ``r`` along it moves the weights by exactly ``r`` in Euclidean distance.
    """
    d = gaussian_direction(model, seed)
    scale = 1.0 / norm(d)
    return {name: t.mul_(scale) for name, t in d.items()}


def filter_normalized_direction(model: nn.Module, seed: int | torch.Generator = 0,
                                bias_bn: str = "zero") -> Direction:
    """Li et al. 2018's filter-normalised random direction (loss-landscape's net_plotter.py,
    ``create_random_direction(net, 'weights', ignore, 'filter')``).

    A Gaussian direction, then for each parameter of two or more dimensions (a conv kernel
    ``(out, in, k, k)``, a linear weight ``(out, in)``) each filter, its slice ``[i]`` along
    the first (output) dimension, is rescaled to the norm of the same filter of the model's
    weights: ``d_i * ||w_i|| / (||d_i|| + 1e-10)``. Per filter, a step of 1 moves the weights
    by their own size, so that pictures of networks whose layers are scaled differently
    (which ReLU networks' functions ignore) compare.

    Parameters of at most one dimension (biases, BatchNorm's weight and bias) follow
    ``bias_bn``, net_plotter.normalize_directions_for_weights' rule:
    - "zero": their direction is 0, they stay at the model's values (``--xignore biasbn``,
      as every command of loss-landscape's README gives);
    - "weights": their direction is the weights themselves, ``d = w`` (loss-landscape's
      rule without ``--xignore``).
    """
    if bias_bn not in BIAS_BN_RULES:
        raise ValueError(f"unknown bias_bn rule {bias_bn!r} (choose from {', '.join(BIAS_BN_RULES)})")
    d = gaussian_direction(model, seed)
    for name, w in model.named_parameters():
        w = w.detach()
        if w.dim() <= 1:
            d[name] = torch.zeros_like(w) if bias_bn == "zero" else w.clone()
            continue
        dims = tuple(range(1, w.dim()))
        shape = (-1,) + (1,) * (w.dim() - 1)
        w_norm = torch.linalg.vector_norm(w, dim=dims).view(shape)
        d_norm = torch.linalg.vector_norm(d[name], dim=dims).view(shape)
        d[name].mul_(w_norm / (d_norm + FILTER_EPS))
    return d


# --------------------------------------------------------------------------- measuring along directions

def measure_line(evaluate: Evaluate, base: Mapping[str, torch.Tensor], direction: Mapping[str, torch.Tensor],
                 coefficients: Iterable[float], key: str = "alpha",
                 progress: Callable[[Iterable], Iterable] | None = None) -> list[dict]:
    """``evaluate(base + a * direction)`` for each coefficient ``a``: one row ``{key: a, **figures}`` each."""
    coefficients = [float(a) for a in coefficients]
    rows = []
    for a in (progress(coefficients) if progress else coefficients):
        rows.append({key: a, **evaluate(combine(base, (a, direction)))})
    return rows


def ray_distances(max_distance: float, num_points: int) -> np.ndarray:
    """``num_points`` distances evenly spaced from 0 to ``max_distance``, both included."""
    if num_points < 2 or not max_distance > 0:
        raise ValueError("a ray needs at least 2 points and a positive maximum distance")
    return np.linspace(0.0, float(max_distance), int(num_points))


def measure_ray(evaluate: Evaluate, base: Mapping[str, torch.Tensor], direction: Mapping[str, torch.Tensor],
                max_distance: float, num_points: int,
                progress: Callable[[Iterable], Iterable] | None = None) -> list[dict]:
    """The figures at distances 0..``max_distance`` (``num_points`` of them) from ``base`` along
    ``direction``: rows ``{"distance": r, **evaluate(base + r * direction)}``. ``r`` is the
    Euclidean distance for a unit direction (``sphere_direction``); otherwise a multiple of it."""
    return measure_line(evaluate, base, direction, ray_distances(max_distance, num_points), "distance", progress)


def measure_plane(evaluate: Evaluate, base: Mapping[str, torch.Tensor], x_direction: Mapping[str, torch.Tensor],
                  y_direction: Mapping[str, torch.Tensor], xs: Iterable[float], ys: Iterable[float],
                  progress: Callable[[Iterable], Iterable] | None = None) -> list[dict]:
    """``evaluate(base + x d + y e)`` over the grid ``xs`` x ``ys`` (rows ``{"i", "j", "x", "y", ...}``,
    ``i`` along ``xs`` outermost, as plane.py's grid)."""
    xs, ys = [float(x) for x in xs], [float(y) for y in ys]
    cells = [(i, j) for i in range(len(xs)) for j in range(len(ys))]
    rows = []
    for i, j in (progress(cells) if progress else cells):
        state = combine(base, (xs[i], x_direction), (ys[j], y_direction))
        rows.append({"i": i, "j": j, "x": xs[i], "y": ys[j], **evaluate(state)})
    return rows


def width(distances, losses, rise: float) -> float:
    """The distance at which ``losses`` first rises by ``rise`` above its value at the first
    distance (0): between the last point below ``losses[0] + rise`` and the first at or above
    it, linearly interpolated. ``math.inf`` when the loss never rises that much over the
    distances measured: the width is then more than the largest distance, and a number there
    would read as a measurement (JSON writers should turn it into null).
    """
    r = np.asarray(distances, dtype=float)
    loss = np.asarray(losses, dtype=float)
    if r.ndim != 1 or r.shape != loss.shape or len(r) < 2:
        raise ValueError("width needs matching 1-D distances and losses, at least two of them")
    if not rise > 0:
        raise ValueError(f"the rise must be positive (got {rise})")
    if np.any(np.diff(r) <= 0):
        raise ValueError("the distances must increase")
    threshold = loss[0] + rise
    above = np.nonzero(loss >= threshold)[0]
    if len(above) == 0:
        return math.inf
    i = int(above[0])  # >= 1, since loss[0] < threshold
    fraction = (threshold - loss[i - 1]) / (loss[i] - loss[i - 1])
    return float(r[i - 1] + fraction * (r[i] - r[i - 1]))
