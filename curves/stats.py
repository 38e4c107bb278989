"""Statistics of a measure along a curve evaluated at points t_0 < ... < t_m."""
from __future__ import annotations

import numpy as np
import torch


def distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Euclidean distance between two points' flat weights."""
    return float(torch.linalg.vector_norm(b - a))


def distances(weights: list[torch.Tensor]) -> np.ndarray:
    """dl: 0, then the distance between consecutive points' flat weights."""
    return np.asarray([0.0] + [distance(a, b) for a, b in zip(weights, weights[1:])])


def summarise(values, dl) -> dict:
    """start, end, min, max, avg (over the points) and int, the arc-length-weighted average.

    int = sum_i (v_{i-1} + v_i) / 2 * dl_i / sum_i dl_i: the trapezoid rule for
    (1/L) * integral of v along the curve's length L; it is avg for a curve of zero length.
    """
    v, dl = np.asarray(values, dtype=np.float64), np.asarray(dl, dtype=np.float64)
    length = dl[1:].sum()
    integral = float((0.5 * (v[:-1] + v[1:]) * dl[1:]).sum() / length) if length > 0 else float(v.mean())
    return {"start": float(v[0]), "end": float(v[-1]), "min": float(v.min()), "max": float(v.max()),
            "avg": float(v.mean()), "int": integral}
