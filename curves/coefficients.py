"""Coefficients c of a point sum_k c_k w_k of a curve's bends or a simplex's vertices w_0 .. w_{n-1}.

Curves, a function of t in [0, 1]:
- Bezier (Bernstein basis): c_k(t) = C(n-1, k) t^k (1-t)^(n-1-k).
  With 3 bends phi(t) = (1-t)^2 w_0 + 2t(1-t) w_1 + t^2 w_2; with 2, the straight segment.
- PolyChain (piecewise linear through the bends, bend k sitting at t_k = k/(n-1)):
  c_k(t) = max(0, 1 - |(n-1) t - k|), the "hat" function of bend k. At most two
  coefficients are non-zero, so phi is linear between consecutive bends; with 2
  bends it is the straight segment (1-t) w_0 + t w_1: the learned line of
  learning-subspaces, whose alpha is our t.
Both give c(0) = e_0 and c(1) = e_{n-1} and coefficients that sum to 1 for every t.
``t`` is a float or a tensor of any shape (...); the result is float32 of shape
(..., n) on t's device (CPU for a float).

Beyond t in [0, 1] the hat functions clamp to 0 (a 2-bend PolyChain at t = 2 has
coefficients (0, 0): no network at all), so the straight line through two networks
beyond its ends (SWA's Figure 6) takes its coefficients from ``line``: (1 - t, t) for any t.

Simplex: c is itself the point, any vector of n non-negative weights summing to 1
(barycentric coordinates); ``draw`` samples it uniformly over the simplex.
"""
from __future__ import annotations

import math

import torch


def _as_tensor(t) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float32)


def _check(num_bends: int) -> None:
    if num_bends < 2:
        raise ValueError(f"a curve needs at least 2 bends (got {num_bends})")


def bezier(t, num_bends: int) -> torch.Tensor:
    """Bernstein coefficients C(n-1, k) t^k (1-t)^(n-1-k), k = 0 .. n-1."""
    _check(num_bends)
    t = _as_tensor(t).unsqueeze(-1)
    k = torch.arange(num_bends, dtype=torch.float32, device=t.device)
    binom = torch.tensor([math.comb(num_bends - 1, i) for i in range(num_bends)],
                         dtype=torch.float32, device=t.device)
    # torch.pow(0, 0) == 1, so the end coefficients are exactly 1 at t = 0 and t = 1
    return binom * t.pow(k) * (1 - t).pow(num_bends - 1 - k)


def polychain(t, num_bends: int) -> torch.Tensor:
    """Hat functions max(0, 1 - |(n-1) t - k|): linear interpolation between neighbouring bends."""
    _check(num_bends)
    t = _as_tensor(t).unsqueeze(-1)
    k = torch.arange(num_bends, dtype=torch.float32, device=t.device)
    return (1 - ((num_bends - 1) * t - k).abs()).clamp(min=0)


def line(t: float) -> torch.Tensor:
    """(1 - t, t) for any real t, float64 (2,): the point (1 - t) w_0 + t w_1 of the line through two
    networks, beyond them too (t = 2 is 2 w_1 - w_0, t = -1 is 2 w_0 - w_1), where ``polychain`` clamps."""
    t = float(t)
    return torch.tensor([1.0 - t, t], dtype=torch.float64)


CURVES = {"Bezier": bezier, "PolyChain": polychain}
SHAPES = (*CURVES, "simplex")  # what a SubspaceModel can be: a curve's bends or a simplex's vertices


def dirichlet(rows: int, num_vertices: int, generator: torch.Generator) -> torch.Tensor:
    """``rows`` independent draws from Dirichlet(1, ..., 1), float64 (rows, n): uniform on the simplex.

    Normalised i.i.d. Exp(1) variables are Dirichlet(1, ..., 1) distributed (a Gamma(1)
    is an Exp(1)), which is how both originals draw (learning-subspaces' train_simplexes.py,
    loss-surface-simplexes' vertex_weights). ``exponential_`` takes a generator, where
    ``torch.distributions.Dirichlet`` does not; and unlike -log(U) it never returns inf.
    """
    e = torch.empty(rows, num_vertices, dtype=torch.float64).exponential_(generator=generator)
    return e / e.sum(1, keepdim=True)


def draw(shape: str, rows: int, num_vertices: int, generator: torch.Generator) -> torch.Tensor:
    """``rows`` coefficient vectors (rows, n) of random points: t ~ U(0, 1) on a curve, uniform on a simplex.

    All randomness comes from ``generator``, so two models with the same generator
    state (every rank of a data-parallel run, a resumed run) draw the same points.
    """
    if shape == "simplex":
        return dirichlet(rows, num_vertices, generator)
    return CURVES[shape](torch.rand(rows, generator=generator), num_vertices)


def centroid(num_vertices: int) -> torch.Tensor:
    """The simplex's centre (1/n, ..., 1/n): the point learning-subspaces evaluates ("midpoint")."""
    return torch.full((num_vertices,), 1.0 / num_vertices, dtype=torch.float64)
