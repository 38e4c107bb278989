"""Random rays from trained networks (Izmailov et al. 2018, Figure 5): the points a run measures, its
directions, the widths of its minima, and its picture.

A run measures C checkpoints w_c along the same N directions d_j, each uniform on the unit sphere
of all weights, at K distances 0 = r_0 < ... < r_{K-1} = D: the points w_c + r_k d_j. Its rows
are numbered checkpoint-major, row ``(c * N + j) * K + k`` for (checkpoint c, direction j,
distance k). Distance 0 is the checkpoint itself whatever the direction: it is evaluated once per
checkpoint (at its row for direction 0) and its figures repeated at the other directions' first
rows, so that every direction's curve starts from the same value. The evaluations of a checkpoint
are numbered from 0 (the checkpoint) to N (K - 1), and across checkpoints on from there: a
point's ``draw``, which numbers its passes over augmented images and seeds any other randomness
of its evaluation. A point's figures depend on its weights and its draw only, so a run killed
after some rows and started again continues with the next one and ends with an uninterrupted
run's figures.

Nothing here parses arguments or prints.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch.nn as nn

from landscape import directions

# a point's figures, as curves.evaluate_weights returns them
FIGURES = ("tr_loss", "tr_nll", "tr_acc", "tr_err", "te_loss", "te_nll", "te_acc", "te_err")


def _seed(seed: int, index: int, stream: int) -> int:
    """A 64-bit seed for item ``index`` of ``stream`` of a run seeded ``seed``: numpy's SeedSequence
    of (seed, index) with the stream as its spawn key, so that the streams never share seeds."""
    # SeedSequence takes non-negative entropy: --seed's 64 bits read as unsigned
    sequence = np.random.SeedSequence([int(seed) % 2 ** 64, int(index)], spawn_key=(stream,))
    return int(sequence.generate_state(1, np.uint64)[0])


def ray_direction(model: nn.Module, seed: int, index: int) -> directions.Direction:
    """Direction ``index`` of a run seeded ``seed``: uniform on the unit sphere of ``model``'s weights
    (``directions.sphere_direction``), from a generator of its own (``_seed(seed, index, 0)``): any
    direction can be drawn again without the ones before it, and networks of one architecture get
    the same directions."""
    return directions.sphere_direction(model, _seed(seed, index, 0))


def point_seed(seed: int, draw: int) -> int:
    """The global RNG's seed for evaluation ``draw`` (dropout in its BatchNorm pass, if any)."""
    return _seed(seed, draw, 1)


@dataclass(frozen=True)
class Plan:
    """The rows of a run of ``num_checkpoints`` x ``num_directions`` rays at ``distances`` (see the module)."""

    num_checkpoints: int
    num_directions: int
    distances: tuple[float, ...]

    @property
    def num_distances(self) -> int:
        return len(self.distances)

    @property
    def num_rows(self) -> int:
        return self.num_checkpoints * self.num_directions * self.num_distances

    @property
    def evaluations_per_checkpoint(self) -> int:
        return 1 + self.num_directions * (self.num_distances - 1)

    @property
    def num_evaluations(self) -> int:
        return self.num_checkpoints * self.evaluations_per_checkpoint

    def where(self, row: int) -> tuple[int, int, int]:
        """(checkpoint, direction, distance index) of ``row``."""
        c, rest = divmod(row, self.num_directions * self.num_distances)
        return (c, *divmod(rest, self.num_distances))

    def row(self, c: int, j: int, k: int) -> int:
        return (c * self.num_directions + j) * self.num_distances + k

    def draw(self, c: int, j: int, k: int) -> int:
        """The number of the evaluation behind row (c, j, k); distance 0 is one evaluation for all j."""
        own = 0 if k == 0 else 1 + j * (self.num_distances - 1) + (k - 1)
        return c * self.evaluations_per_checkpoint + own

    def label(self, row: int) -> dict:
        """The row's coordinates as metrics.csv holds them."""
        c, j, k = self.where(row)
        return {"checkpoint": c, "direction": j, "distance": self.distances[k]}

    def completed(self, rows: list[dict]) -> list[dict]:
        """The leading rows of an earlier run (as Run.resume_points gives them, or csv reads them) that
        are this plan's rows in order, complete, with their figures as floats: where a continued run
        starts again."""
        done = []
        for row in rows[:self.num_rows]:
            expected = self.label(len(done))
            try:
                if (int(row["checkpoint"]), int(row["direction"]), float(row["distance"])) != \
                        (expected["checkpoint"], expected["direction"], expected["distance"]):
                    break
                figures = {key: float(row[key]) for key in FIGURES}
            except (KeyError, TypeError, ValueError):
                break
            done.append({**expected, **figures})
        return done

    def arrays(self, rows: list[dict]) -> dict[str, np.ndarray]:
        """Every figure of the run's rows (all of them) as an array (checkpoint, direction, distance)."""
        if len(rows) != self.num_rows:
            raise ValueError(f"{len(rows)} rows, the plan has {self.num_rows}")
        shape = (self.num_checkpoints, self.num_directions, self.num_distances)
        return {key: np.array([r[key] for r in rows], dtype=np.float64).reshape(shape) for key in FIGURES}


def widths(distances, train_loss: np.ndarray, rise: float) -> tuple[np.ndarray, np.ndarray]:
    """The widths of the checkpoints' minima from the train loss (checkpoint, direction, distance):
    per checkpoint, ``directions.width`` of the mean over directions at each distance (C,), and of
    each direction's own curve (C, N). ``inf`` where the loss never rises by ``rise`` within reach."""
    train_loss = np.asarray(train_loss, dtype=np.float64)
    mean = np.array([directions.width(distances, curve, rise) for curve in train_loss.mean(axis=1)])
    each = np.array([[directions.width(distances, curve, rise) for curve in per_checkpoint]
                     for per_checkpoint in train_loss])
    return mean, each


def summarise(plan: Plan, rows: list[dict], rise: float) -> dict:
    """A finished run's figures: its arrays (``Plan.arrays``), and per checkpoint its figures at distance 0
    and its widths (``widths``): of the train loss (mean over directions, and each direction's) and of
    the train NLL alone (without the L2 term, whose 0.5 * wd * r^2 caps the loss's width)."""
    arrays = plan.arrays(rows)
    loss_widths, direction_widths = widths(plan.distances, arrays["tr_loss"], rise)
    nll_widths = widths(plan.distances, arrays["tr_nll"], rise)[0]
    checkpoints = []
    for c in range(plan.num_checkpoints):
        first = rows[plan.row(c, 0, 0)]
        checkpoints.append({"width": loss_widths[c], "direction_widths": direction_widths[c].tolist(),
                            "nll_width": nll_widths[c], "train_loss": first["tr_loss"], "train_nll": first["tr_nll"],
                            "train_err": first["tr_err"], "test_nll": first["te_nll"], "test_err": first["te_err"]})
    return {"arrays": arrays, "width": loss_widths, "direction_widths": direction_widths, "nll_width": nll_widths,
            "checkpoints": checkpoints}


def short_name(path: str) -> str:
    """A checkpoint's name in a legend: its file with its folder (``sgd-1/checkpoint-20.pt``)."""
    parts = os.path.normpath(path).split(os.sep)
    return os.path.join(*parts[-2:])


def plot_rays(path: str, distances, arrays: dict, labels: list[str], mean_widths, rise: float,
              title: str = "") -> None:
    """Train loss and test error against the distance, side by side: each checkpoint's mean over
    directions, its band from the lowest to the highest direction, and its width (dotted) on the loss."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    r = np.asarray(distances, dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    for ax, key, label in ((axes[0], "tr_loss", "train loss (NLL + L2)"), (axes[1], "te_err", "test error (%)")):
        for c, name in enumerate(labels):
            values = arrays[key][c]  # (directions, distances)
            colour = f"C{c % 10}"
            legend = name
            if key == "tr_loss":
                w = mean_widths[c]
                legend += f" (width {w:.3g})" if math.isfinite(w) else f" (width > {r[-1]:.3g})"
                if math.isfinite(w):
                    ax.axvline(w, color=colour, ls=":", lw=1.2)
            ax.fill_between(r, values.min(axis=0), values.max(axis=0), color=colour, alpha=0.2, lw=0)
            ax.plot(r, values.mean(axis=0), "-", color=colour, lw=2, label=legend)
        ax.set_xlabel("distance along a random direction (unit sphere of all weights)")
        ax.set_ylabel(label)
        ax.set_title(label + ": mean over directions, band min to max")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, title=f"width: mean loss + {rise:g}", title_fontsize=8)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
