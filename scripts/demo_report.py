"""The demo's closing table, summary.json and pictures, from the runs scripts/demo.sh wrote.

    python scripts/demo_report.py runs/demo

Reads <dir>/{endpoint-1,endpoint-2,segment,curve-eval,fge,swa,ind}/summary.json (and the
segment's and curve's curve.npz, the FGE run's metrics.csv); writes <dir>/summary.json,
<dir>/curve_vs_segment.png and <dir>/fge_ensemble.png, and prints the table.
"""
from __future__ import annotations

import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tabulate import tabulate  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ensembles  # noqa: E402

RUNS = ("endpoint-1", "endpoint-2", "segment", "curve-eval", "fge", "swa", "ind")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def read_summaries(folder: str) -> dict:
    summaries = {}
    for run in RUNS:
        path = os.path.join(folder, run, "summary.json")
        if not os.path.isfile(path):
            fail(f"{path} is missing: run scripts/demo.sh first")
        with open(path) as f:
            summaries[run] = json.load(f)
    return summaries


def report(folder: str) -> dict:
    s = read_summaries(folder)
    endpoints = [100.0 - s[f"endpoint-{i}"]["test_acc"] for i in (1, 2)]
    figures = {
        "endpoint_test_err": endpoints,
        "segment_max_test_err": s["segment"]["test_err"]["max"],
        "curve_max_test_err": s["curve-eval"]["test_err"]["max"],
        "fge_test_err": 100.0 - s["fge"]["ens_acc"],
        "swa_test_err": 100.0 - s["swa"]["swa_test_acc"],
        "ind_ensemble_test_err": 100.0 - s["ind"]["ens_acc"],
    }
    # the barrier: how far the worst point of a path rises above the worse endpoint
    figures["segment_barrier"] = figures["segment_max_test_err"] - max(endpoints)
    figures["curve_barrier"] = figures["curve_max_test_err"] - max(endpoints)
    rows = [
        ["Endpoint 1 (SGD, seed 1)", endpoints[0], s["endpoint-1"]["test_nll"]],
        ["Endpoint 2 (SGD, seed 2)", endpoints[1], s["endpoint-2"]["test_nll"]],
        ["Straight segment, worst point", figures["segment_max_test_err"], s["segment"]["test_nll"]["max"]],
        ["Bezier curve, worst point", figures["curve_max_test_err"], s["curve-eval"]["test_nll"]["max"]],
        ["Ind: ensemble of the 2 endpoints", figures["ind_ensemble_test_err"], s["ind"]["ens_nll"]],
        [f"FGE: ensemble of {s['fge']['ensemble_size']} snapshots", figures["fge_test_err"], s["fge"]["ens_nll"]],
        [f"SWA: average of {s['swa']['swa_n']} models", figures["swa_test_err"], s["swa"]["swa_test_nll"]],
    ]
    print(tabulate(rows, ["method (ConvFC on DIGITS)", "test error %", "test NLL"], floatfmt=".3f"))
    print(f"\nbarrier above the worse endpoint: segment {figures['segment_barrier']:.2f} points, "
          f"curve {figures['curve_barrier']:.2f} points")
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump(figures, f, indent=2)
    plot_paths(folder, endpoints)
    plot_fge(folder)
    return figures


def plot_paths(folder: str, endpoints: list[float]) -> None:
    """Test error against t along the straight segment and along the fitted curve."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    for run, label, color in (("segment", "straight segment", "tab:gray"), ("curve-eval", "Bezier curve", "tab:red")):
        points = np.load(os.path.join(folder, run, "curve.npz"))
        ax.plot(points["ts"], points["te_err"], "-", color=color, label=label, lw=2)
    ax.plot([0, 1], endpoints, "o", color="black", label="endpoints", zorder=3)
    ax.set_xlabel("t")
    ax.set_ylabel("test error (%)")
    ax.set_title("Mode connectivity: ConvFC on DIGITS")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "curve_vs_segment.png"))
    plt.close(fig)


def plot_fge(folder: str) -> None:
    """The FGE ensemble's test accuracy as snapshots are added, beside each snapshot's own."""
    with open(os.path.join(folder, "fge", "metrics.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["snapshot"] == "1"]
    ensembles.plot_ensemble_accuracy(os.path.join(folder, "fge_ensemble.png"),
                                     [float(r["test_acc"]) for r in rows], [float(r["ens_acc"]) for r in rows],
                                     title="Fast Geometric Ensembling: ConvFC on DIGITS")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: python scripts/demo_report.py RUN_DIR")
    report(sys.argv[1])
