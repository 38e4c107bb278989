"""The learning-rate cycles of Fast Geometric Ensembling and Snapshot Ensembles, and when they collect.

Epochs are counted as the original code counts them: a schedule takes the epoch
from 0 and the fraction of it done; "epoch e" in a run's output counts from 1.
"""
from __future__ import annotations

import math


SCHEDULES = ("linear", "cosine")  # FGE's triangle, and Snapshot Ensembles' cosine


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
