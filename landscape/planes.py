"""The plane through three points of weight space: its basis, coordinates in it, and its grid.

The construction of the mode-connectivity paper's code (Garipov et al., 2018):
with three flat weight vectors w0, w1, w2 (the bends of a 3-bend curve, or three
trained networks),

    u = (w2 - w0) / dx,              dx = ||w2 - w0||
    v = (r - <r, u> u) / dy,         r = w1 - w0,  dy = ||r - <r, u> u||

so that u, v are orthonormal, w0 is the origin, w2 sits at (dx, 0) on the x axis
and w1 at (<r, u>, dy). A point (x, y) of the plane is the weight vector
w0 + x u + y v. The grid spans [-margin, 1 + margin] of each axis's extent
(dx along u, dy along v), as the paper's figures do.

    from landscape import Plane
    plane = Plane(w0, w1, w2)
    plane.coordinates(w1)              # tensor([<r, u>, dy])
    w = plane.point(0.5 * plane.dx, 0.0)  # the midpoint of the segment w0 -> w2

Parameters are matched by name (``flatten``), never by order. Nothing here parses
arguments or prints; ``plot_plane`` draws a saved result with matplotlib (Agg).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn


# --------------------------------------------------------------------------- flat weights by name

def flatten(state: dict, module: nn.Module) -> torch.Tensor:
    """The module's parameters, taken by name from a state dict, as one flat float32 vector
    in ``module.parameters()`` order; a missing name or a wrong shape is a ValueError."""
    parts = []
    for name, p in module.named_parameters():
        if name not in state:
            raise ValueError(f"the state has no parameter {name!r}")
        if tuple(state[name].shape) != tuple(p.shape):
            raise ValueError(f"parameter {name!r} has shape {tuple(state[name].shape)}, the model {tuple(p.shape)}")
        parts.append(state[name].detach().reshape(-1).float())
    return torch.cat(parts)


def bend_state(curve_state: dict, k: int) -> dict:
    """Bend k of a curve's state dict (keys ``bends.<k>.<name>``) as a plain model state dict."""
    prefix = f"bends.{k}."
    return {key[len(prefix):]: value for key, value in curve_state.items() if key.startswith(prefix)}


@torch.no_grad()
def load_flat(module: nn.Module, w: torch.Tensor) -> None:
    """Copy the flat vector ``w`` into the module's parameters (in place: memory formats are kept)."""
    offset = 0
    for p in module.parameters():
        p.copy_(w[offset:offset + p.numel()].view_as(p))
        offset += p.numel()
    if offset != w.numel():
        raise ValueError(f"the vector has {w.numel()} weights, the module {offset}")


# --------------------------------------------------------------------------- the plane

class Plane:
    """The affine plane through w0, w1, w2 with the orthonormal basis (u, v) described above."""

    def __init__(self, w0: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, rtol: float = 1e-6):
        # float64: float32 dot products over millions of weights err by ~1e-4 relative, which
        # moved w2 visibly off the x axis; the weights are cast back when loaded into a model
        w0, w1, w2 = (w.double() for w in (w0, w1, w2))
        self.origin = w0
        u = w2 - w0
        self.dx = float(torch.linalg.vector_norm(u))
        if self.dx == 0.0:
            raise ValueError("the first and the last point are equal: they span no plane")
        self.u = u / self.dx
        # Gram-Schmidt: keep the part of w1 - w0 orthogonal to u
        r = w1 - w0
        v = r - torch.dot(r, self.u) * self.u
        self.dy = float(torch.linalg.vector_norm(v))
        # a middle bend on the line in float32 (an untrained, init_linear curve) is off it by
        # rounding only, ~6e-8 * ||w|| (float32's epsilon): far below rtol * ||w||
        scale = max(float(torch.linalg.vector_norm(w)) for w in (w0, w1, w2))
        if self.dy <= rtol * scale:
            raise ValueError(f"the three points are collinear (distance of the middle one from the line "
                             f"{self.dy:.3g}, of the end points {self.dx:.3g}): they span no plane")
        self.v = v / self.dy

    def coordinates(self, w: torch.Tensor) -> torch.Tensor:
        """(x, y) of the projection of ``w`` on the plane: <w - w0, u>, <w - w0, v>."""
        d = w.double() - self.origin
        return torch.stack([torch.dot(d, self.u), torch.dot(d, self.v)])

    def point(self, x: float, y: float) -> torch.Tensor:
        """The weight vector at plane coordinates (x, y): w0 + x u + y v."""
        return self.origin + x * self.u + y * self.v

    def grid(self, points: int, margin_left=0.2, margin_right=0.2, margin_bottom=0.2, margin_top=0.2):
        """``alphas``, ``betas`` (G,) in units of dx and dy, and ``grid`` (G, G, 2) = (alpha dx, beta dy).

        As the paper's code: ``grid[i, j]`` is at alphas[i], betas[j] (i along u, j along v).
        """
        alphas = np.linspace(-margin_left, 1.0 + margin_right, points)
        betas = np.linspace(-margin_bottom, 1.0 + margin_top, points)
        grid = np.stack(np.meshgrid(alphas * self.dx, betas * self.dy, indexing="ij"), axis=-1)
        return alphas, betas, grid


def l2(w: torch.Tensor, wd: float) -> float:
    """The training loss's weight-decay term 0.5 * wd * ||w||^2 (as on a curve)."""
    w = w.double()
    return 0.5 * wd * float(torch.dot(w, w))


# --------------------------------------------------------------------------- picture

def contour_levels(values: np.ndarray, count: int = 12, smallest: float = 3e-3) -> np.ndarray:
    """Levels min + span * s, s log-spaced from ``smallest`` to 1 (and min itself).

    A trained network's valley is a tiny fraction of the loss range over the plane;
    evenly spaced levels would paint it one colour. Log spacing above the minimum,
    as in the paper's figures, resolves the valley floor and the ridges alike.
    """
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    span = high - low
    if not span > 0:
        return np.array([low, low + 1.0])
    levels = low + span * np.geomspace(smallest, 1.0, count)
    return np.unique(np.concatenate([[low], levels]))


CMAP = "RdYlBu_r"  # low blue, high red, as the paper's figures


def plot_plane(result: dict, path: str, title: str = "") -> None:
    """Filled contours of train loss and test error over the plane, the curve, the straight
    segment from bend 0 to bend 2 and the bends. ``result`` holds plane.npz's arrays
    (and, optionally, ``is_curve``: False draws the three points' segments, no curve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid, bends, curve = result["grid"], result["bend_coordinates"], result["curve_coordinates"]
    is_curve = bool(result.get("is_curve", True))
    panels = [("tr_loss", "train loss (NLL + L2)"), ("te_err", "test error (%)")]
    # true geometry (equal scales) unless the plane is very thin; panel height follows it
    extent = np.ptp(grid[..., 1]) / np.ptp(grid[..., 0])
    equal = 0.4 <= extent <= 2.5
    height = float(np.clip(4.6 * extent if equal else 3.6, 2.2, 7.0))
    fig, axes = plt.subplots(1, 2, figsize=(11, height + 1.3), constrained_layout=True)
    for ax, (key, label) in zip(axes, panels):
        values = result[key]
        levels = contour_levels(values)
        # one evenly spaced colour per band: a linear norm would give the log-spaced valley
        # bands nearly one colour
        norm = matplotlib.colors.BoundaryNorm(levels, plt.get_cmap(CMAP).N)
        filled = ax.contourf(grid[..., 0], grid[..., 1], values, levels=levels, cmap=CMAP, norm=norm)
        ax.contour(grid[..., 0], grid[..., 1], values, levels=levels, colors="k", linewidths=0.4, alpha=0.5)
        bar = fig.colorbar(filled, ax=ax, format="%.3g", shrink=0.9)
        bar.set_label(label)
        # the straight segment(s) between the points: where the barrier is
        pairs = [(0, 2)] if is_curve else [(0, 2), (0, 1), (1, 2)]
        for a, b in pairs:
            ax.plot(bends[[a, b], 0], bends[[a, b], 1], "--", color="k", lw=1.8,
                    label="segment" if (a, b) == (0, 2) else None)
        if is_curve:
            ax.plot(curve[:, 0], curve[:, 1], "-", color="k", lw=2.4, label="curve")
            ax.plot(bends[[0, 2], 0], bends[[0, 2], 1], "o", ms=9, color="white", mec="k", label="end bends")
            ax.plot(bends[1, 0], bends[1, 1], "D", ms=7, color="white", mec="k", label="middle bend")
        else:
            ax.plot(bends[:, 0], bends[:, 1], "o", ms=8, color="white", mec="k", label="networks")
        ax.set_aspect("equal" if equal else "auto")
        ax.set_xlabel("u: from w0 towards w2 (distance in weight space)")
        ax.set_ylabel("v: towards w1, orthogonal to u" + ("" if equal else " (stretched)"))
        ax.set_title(label)
    axes[0].legend(loc="upper right", fontsize=8, framealpha=0.8)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)

