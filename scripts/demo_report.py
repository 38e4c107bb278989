"""The demo's closing table, its figures file and pictures, from the runs scripts/demo.sh wrote.

    python scripts/demo_report.py runs/demo [--seconds S]

Reads the runs' summary.json files (and the segment's and curve's curve.npz, the plane's
plane.npz, the FGE run's metrics.csv); writes <dir>/summary.json (the table's figures),
<dir>/figures.json (the same, with the arrays behind the pictures and the machine they were
measured on: what ``scripts/readme.py --from <dir>`` records as docs/demo.json) and the
pictures curve_vs_segment.png and fge_ensemble.png, and prints the table.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import sys

import numpy as np
import torch
from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ensembles  # noqa: E402

RUNS = ("endpoint-1", "endpoint-2", "segment", "curve-eval", "plane", "fge", "swa", "ind")


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


def collect(folder: str) -> dict:
    """The demo's record: the table's figures, the arrays its pictures are drawn from, the machine."""
    s = read_summaries(folder)
    endpoints = [100.0 - s[f"endpoint-{i}"]["test_acc"] for i in (1, 2)]
    figures = {
        "endpoint_test_err": endpoints,
        "endpoint_test_nll": [s[f"endpoint-{i}"]["test_nll"] for i in (1, 2)],
        "segment_max_test_err": s["segment"]["test_err"]["max"],
        "segment_max_test_nll": s["segment"]["test_nll"]["max"],
        "curve_max_test_err": s["curve-eval"]["test_err"]["max"],
        "curve_max_test_nll": s["curve-eval"]["test_nll"]["max"],
        "fge_test_err": 100.0 - s["fge"]["ens_acc"], "fge_test_nll": s["fge"]["ens_nll"],
        "fge_size": s["fge"]["ensemble_size"],
        "swa_test_err": 100.0 - s["swa"]["swa_test_acc"], "swa_test_nll": s["swa"]["swa_test_nll"],
        "swa_n": s["swa"]["swa_n"],
        "ind_ensemble_test_err": 100.0 - s["ind"]["ens_acc"], "ind_ensemble_test_nll": s["ind"]["ens_nll"],
    }
    # the barrier: how far the worst point of a path rises above the worse endpoint
    figures["segment_barrier"] = figures["segment_max_test_err"] - max(endpoints)
    figures["curve_barrier"] = figures["curve_max_test_err"] - max(endpoints)
    paths = {}
    for run, name in (("segment", "segment"), ("curve-eval", "curve")):
        points = np.load(os.path.join(folder, run, "curve.npz"))
        paths[name] = {"ts": points["ts"].tolist(), "te_err": points["te_err"].tolist(),
                       "tr_loss": points["tr_loss"].tolist()}
    with open(os.path.join(folder, "fge", "metrics.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["snapshot"] == "1"]
    fge = {"snapshot_acc": [float(r["test_acc"]) for r in rows], "ensemble_acc": [float(r["ens_acc"]) for r in rows]}
    plane = dict(np.load(os.path.join(folder, "plane", "plane.npz")))
    plane = {k: v.tolist() for k, v in plane.items()}
    plane["points"], plane["dx"], plane["dy"] = s["plane"]["points"], s["plane"]["dx"], s["plane"]["dy"]
    return {"figures": figures, "paths": paths, "fge": fge, "plane": plane, "machine": machine()}


def machine() -> dict:
    name = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    return {"cpu": name, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "date": datetime.date.today().isoformat()}


def table(record: dict) -> list[list]:
    """The rows of the demo's table: method, test error %, test NLL."""
    f = record["figures"]
    return [
        ["Endpoint 1 (SGD, seed 1)", f["endpoint_test_err"][0], f["endpoint_test_nll"][0]],
        ["Endpoint 2 (SGD, seed 2)", f["endpoint_test_err"][1], f["endpoint_test_nll"][1]],
        ["Straight segment, worst point", f["segment_max_test_err"], f["segment_max_test_nll"]],
        ["Bezier curve, worst point", f["curve_max_test_err"], f["curve_max_test_nll"]],
        ["Ind: ensemble of the 2 endpoints", f["ind_ensemble_test_err"], f["ind_ensemble_test_nll"]],
        [f"FGE: ensemble of {f['fge_size']} snapshots", f["fge_test_err"], f["fge_test_nll"]],
        [f"SWA: average of {f['swa_n']} models", f["swa_test_err"], f["swa_test_nll"]],
    ]


# --------------------------------------------------------------------------- pictures

def draw(record: dict, folder: str) -> dict:
    """The demo's pictures, drawn from its record into ``folder``; returns their paths by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {"curve": os.path.join(folder, "curve_vs_segment.png"), "fge": os.path.join(folder, "fge_ensemble.png")}
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    for name, label, color in (("segment", "straight segment", "tab:gray"), ("curve", "Bezier curve", "tab:red")):
        points = record["paths"][name]
        ax.plot(points["ts"], points["te_err"], "-", color=color, label=label, lw=2)
    ax.plot([0, 1], record["figures"]["endpoint_test_err"], "o", color="black", label="endpoints", zorder=3)
    ax.set_xlabel("t")
    ax.set_ylabel("test error (%)")
    ax.set_title("Mode connectivity: ConvFC on DIGITS")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths["curve"])
    plt.close(fig)
    ensembles.plot_ensemble_accuracy(paths["fge"], record["fge"]["snapshot_acc"], record["fge"]["ensemble_acc"],
                                     title="Fast Geometric Ensembling: ConvFC on DIGITS")
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="The demo's table, figures file and pictures.")
    parser.add_argument("folder", help="the demo's output folder (runs/demo)")
    parser.add_argument("--seconds", type=float, default=None, help="how long the demo took, to record")
    args = parser.parse_args(argv)
    record = collect(args.folder)
    record["seconds"] = args.seconds
    print(tabulate(table(record), ["method (ConvFC on DIGITS)", "test error %", "test NLL"], floatfmt=".3f"))
    f = record["figures"]
    print(f"\nbarrier above the worse endpoint: segment {f['segment_barrier']:.2f} points, "
          f"curve {f['curve_barrier']:.2f} points")
    with open(os.path.join(args.folder, "summary.json"), "w") as out:
        json.dump(f, out, indent=2)
    with open(os.path.join(args.folder, "figures.json"), "w") as out:
        json.dump(record, out)
    draw(record, args.folder)


if __name__ == "__main__":
    main()
