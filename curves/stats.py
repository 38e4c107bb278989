"""Statistics of a measure along a curve evaluated at points t_0 < ... < t_m."""
from __future__ import annotations

import math

import numpy as np
import torch


def distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Euclidean distance between two points' flat weights."""
    return float(torch.linalg.vector_norm(b - a))


def distances(weights: list[torch.Tensor]) -> np.ndarray:
    """dl: 0, then the distance between consecutive points' flat weights."""
    return np.asarray([0.0] + [distance(a, b) for a, b in zip(weights, weights[1:])])


def summarise(values, dl, ends: tuple[int, int] = (0, -1)) -> dict:
    """start, end (the values at the points ``ends``: the first and the last, or where t = 0 and
    t = 1 on a line drawn beyond them), min, max, avg (over all the points) and int, the
    arc-length-weighted average over all of them.

    int = sum_i (v_{i-1} + v_i) / 2 * dl_i / sum_i dl_i: the trapezoid rule for
    (1/L) * integral of v along the curve's length L; it is avg for a curve of zero length.
    """
    v, dl = np.asarray(values, dtype=np.float64), np.asarray(dl, dtype=np.float64)
    length = dl[1:].sum()
    integral = float((0.5 * (v[:-1] + v[1:]) * dl[1:]).sum() / length) if length > 0 else float(v.mean())
    return {"start": float(v[ends[0]]), "end": float(v[ends[1]]), "min": float(v.min()), "max": float(v.max()),
            "avg": float(v.mean()), "int": integral}


def line_points(t_min: float, t_max: float, num_points: int) -> np.ndarray:
    """``num_points`` values of t from ``t_min`` <= 0 to ``t_max`` >= 1 among which are 0 and 1, exactly.

    Evenly spaced within each of [t_min, 0], [0, 1] and [1, t_max] (those of positive length),
    the num_points - 1 intervals shared among these pieces in proportion to their lengths
    (largest remainders; at least one each). On [0, 1] alone that is np.linspace(0, 1, num_points);
    wherever linspace's grid over [t_min, t_max] already has 0 and 1 among its points (t in
    [-1, 2] with 61 points: steps of 0.05), it is that grid, to rounding.
    """
    if not (math.isfinite(t_min) and math.isfinite(t_max) and t_min <= 0.0 and t_max >= 1.0):
        raise ValueError(f"t from {t_min:g} to {t_max:g}: the range must hold 0 and 1 (t_min <= 0, t_max >= 1)")
    pieces = [(a, b) for a, b in ((t_min, 0.0), (0.0, 1.0), (1.0, t_max)) if b > a]
    intervals = int(num_points) - 1
    if intervals < len(pieces):
        raise ValueError(f"{num_points} points cannot hold t = {t_min:g}, 0, 1 and {t_max:g}: "
                         f"{len(pieces) + 1} at least")
    ideal = [intervals * (b - a) / (t_max - t_min) for a, b in pieces]
    counts = [max(1, math.floor(x)) for x in ideal]
    while sum(counts) < intervals:  # the largest remainder first (ties: the earlier piece)
        counts[max(range(len(pieces)), key=lambda i: (ideal[i] - counts[i], -i))] += 1
    while sum(counts) > intervals:  # only where a short piece was given its one interval
        counts[min((i for i in range(len(pieces)) if counts[i] > 1), key=lambda i: (ideal[i] - counts[i], i))] -= 1
    grids = [np.linspace(a, b, n + 1) for (a, b), n in zip(pieces, counts)]
    return np.concatenate([grids[0]] + [g[1:] for g in grids[1:]])
