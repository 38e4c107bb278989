"""Calibration shown: reliability diagrams (Guo et al., 2017) of one or several models' predictions.

The bins are ECE's (``utils.confidence_bins``: equal-width bins of the top probability, as many as
the script's --ece_bins), so the ECE in a diagram's legend is the ECE in the run's summary.json.
"""
from __future__ import annotations

import numpy as np

import utils

PANELS = 4  # models drawn side by side; more share one axis


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = utils.ECE_BINS) -> dict:
    """Per confidence bin the ``count``, mean ``confidence``, ``accuracy`` and their ``gap``
    (confidence - accuracy: > 0 overconfident), plus the ``ece`` and the bin ``edges``."""
    b = utils.confidence_bins(probs, labels, bins)
    return {**b, "gap": b["confidence"] - b["accuracy"], "ece": utils.expected_calibration_error(probs, labels, bins)}


def plot_reliability(path: str, predictions: dict[str, np.ndarray], labels: np.ndarray, *, bins: int = utils.ECE_BINS,
                     title: str = "", panels: int = PANELS, highlight: tuple[str, ...] = ()) -> None:
    """A PNG of the reliability diagrams of ``predictions`` (name -> test probabilities (N, classes)).

    Up to ``panels`` models side by side, each with its bins' accuracy (bars), the gap to their mean
    confidence (hatched: above the bar overconfident, inside it underconfident), the diagonal of
    perfect calibration, and the ECE in the legend. More models share one axis: accuracy against
    confidence per bin, the ``highlight``ed ones in colour and the others grey (an ensemble's members).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {name: reliability(probs, labels, bins) for name, probs in predictions.items()}
    if len(curves) <= panels:
        fig, axes = plt.subplots(2, len(curves), figsize=(3.6 * len(curves), 4.8), dpi=120, squeeze=False,
                                 sharex=True, height_ratios=(3, 1), constrained_layout=True)
        for column, (name, r) in enumerate(curves.items()):
            _bars(axes[0][column], axes[1][column], name, r)
        axes[0][0].set_ylabel("accuracy")
        axes[1][0].set_ylabel("share of images")
    else:
        fig, ax = plt.subplots(figsize=(5.5, 4.8), dpi=120, constrained_layout=True)
        colours = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
        members = 0
        for name, r in curves.items():
            shown = r["count"] > 0
            if name in highlight:
                ax.plot(r["confidence"][shown], r["accuracy"][shown], "-o", ms=4, lw=2, color=next(colours),
                        label=f"{name} (ECE {100 * r['ece']:.2f}%)", zorder=3)
            else:
                members += 1
                ax.plot(r["confidence"][shown], r["accuracy"][shown], "-", lw=1, color="0.6", alpha=0.7,
                        label=None if members > 1 else "members", zorder=2)
        mean_ece = np.mean([r["ece"] for n, r in curves.items() if n not in highlight] or [np.nan])
        handles, names = ax.get_legend_handles_labels()  # one entry for all members, with their mean ECE
        names = [f"{members} members (mean ECE {100 * mean_ece:.2f}%)" if n == "members" else n for n in names]
        ax.legend(handles, names, loc="upper left", fontsize=8)
        _frame(ax)
        ax.set_xlabel("confidence (mean of the bin)")
        ax.set_ylabel("accuracy")
    if title:
        fig.suptitle(title)
    fig.savefig(path)
    plt.close(fig)


def _bars(ax, below, name: str, r: dict) -> None:
    """One model's diagram: accuracy bars per bin, the gap to the bin's mean confidence, and below
    the share of the images in each bin."""
    edges = r["edges"]
    width, left = np.diff(edges), edges[:-1]
    filled = r["count"] > 0
    accuracy, confidence = np.nan_to_num(r["accuracy"]), np.nan_to_num(r["confidence"])
    ax.bar(left[filled], accuracy[filled], width[filled], align="edge", color="tab:blue", edgecolor="black",
           lw=0.5, label=f"accuracy (ECE {100 * r['ece']:.2f}%)")
    low, high = np.minimum(accuracy, confidence), np.maximum(accuracy, confidence)
    ax.bar(left[filled], (high - low)[filled], width[filled], bottom=low[filled], align="edge", color="none",
           edgecolor="tab:red", hatch="///", lw=0.8, label="gap to the mean confidence")
    ax.set_title(name, fontsize=10)
    _frame(ax)
    ax.legend(loc="upper left", fontsize=8)
    below.bar(left, r["count"] / r["count"].sum(), width, align="edge", color="0.5", edgecolor="black", lw=0.5)
    below.set_xlim(0, 1)
    below.set_xlabel("confidence")
    below.grid(alpha=0.3)


def _frame(ax) -> None:
    ax.plot([0, 1], [0, 1], "--", color="black", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
