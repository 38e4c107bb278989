"""Coefficient functions: the weights phi(t) = sum_k c_k(t) w_k of a curve with n bends w_0 .. w_{n-1}.

- Bezier (Bernstein basis): c_k(t) = C(n-1, k) t^k (1-t)^(n-1-k).
  With 3 bends phi(t) = (1-t)^2 w_0 + 2t(1-t) w_1 + t^2 w_2; with 2, the straight segment.
- PolyChain (piecewise linear through the bends, bend k sitting at t_k = k/(n-1)):
  c_k(t) = max(0, 1 - |(n-1) t - k|), the "hat" function of bend k. At most two
  coefficients are non-zero, so phi is linear between consecutive bends; with 2
  bends it is the straight segment (1-t) w_0 + t w_1.

Both give c(0) = e_0 and c(1) = e_{n-1} (the curve starts and ends at the end
bends) and coefficients that sum to 1 for every t. ``t`` is a float or a 0-d
tensor; the result is a float32 tensor of shape (n,) on t's device (CPU for a float).
"""
from __future__ import annotations

import math

import torch


def _as_tensor(t) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float32).reshape(())


def _check(num_bends: int) -> None:
    if num_bends < 2:
        raise ValueError(f"a curve needs at least 2 bends (got {num_bends})")


def bezier(t, num_bends: int) -> torch.Tensor:
    """Bernstein coefficients C(n-1, k) t^k (1-t)^(n-1-k), k = 0 .. n-1."""
    _check(num_bends)
    t = _as_tensor(t)
    k = torch.arange(num_bends, dtype=torch.float32, device=t.device)
    binom = torch.tensor([math.comb(num_bends - 1, i) for i in range(num_bends)],
                         dtype=torch.float32, device=t.device)
    # torch.pow(0, 0) == 1, so the end coefficients are exactly 1 at t = 0 and t = 1
    return binom * t.pow(k) * (1 - t).pow(num_bends - 1 - k)


def polychain(t, num_bends: int) -> torch.Tensor:
    """Hat functions max(0, 1 - |(n-1) t - k|): linear interpolation between neighbouring bends."""
    _check(num_bends)
    t = _as_tensor(t)
    k = torch.arange(num_bends, dtype=torch.float32, device=t.device)
    return (1 - ((num_bends - 1) * t - k).abs()).clamp(min=0)


CURVES = {"Bezier": bezier, "PolyChain": polychain}
