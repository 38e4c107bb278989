"""The demo's record, tables and pictures, from the runs scripts/demo.sh wrote.

``collect(folder)`` reads the runs' summary.json files (and the segment's and curve's curve.npz, the plane's
plane.npz, the FGE run's metrics.csv, the line's subspace.csv); writes <dir>/summary.json (the
table's figures), with the arrays behind the pictures and the machine they were measured on:
the record that scripts/demo_report.py writes as <dir>/figures.json and ``make readme`` keeps
as docs/demo.json. ``table`` and ``noisy_table`` are the two tables' rows (mode connectivity,
and the methods on noisy labels); ``draw`` the pictures curve_vs_segment.png, fge_ensemble.png
and noisy_labels.png.
"""
from __future__ import annotations

import csv
import datetime
import json
import os
import platform

import numpy as np
import torch

import ensembles
import runtime.processes
from runtime.errors import UserError

RUNS = ("endpoint-1", "endpoint-2", "segment", "aligned", "segment-aligned", "curve-eval", "plane",
        "sgd-1", "sgd-2", "ind", "fge", "swa", "line", "one", "espro")


def read_summaries(folder: str) -> dict:
    summaries = {}
    for run in RUNS:
        path = os.path.join(folder, run, "summary.json")
        if not os.path.isfile(path):
            raise UserError(f"{path} is missing: run scripts/demo.sh first")
        with open(path) as f:
            summaries[run] = json.load(f)
    return summaries


def collect(folder: str) -> dict:
    """The demo's record: the table's figures, the arrays its pictures are drawn from, the machine."""
    s = read_summaries(folder)
    endpoints = [100.0 - s[f"endpoint-{i}"]["test_acc"] for i in (1, 2)]
    figures = {  # part 1: mode connectivity
        "endpoint_test_err": endpoints,
        "endpoint_test_nll": [s[f"endpoint-{i}"]["test_nll"] for i in (1, 2)],
        "segment_max_test_err": s["segment"]["test_err"]["max"],
        "segment_max_test_nll": s["segment"]["test_nll"]["max"],
        "aligned_max_test_err": s["segment-aligned"]["test_err"]["max"],
        "aligned_max_test_nll": s["segment-aligned"]["test_nll"]["max"],
        "aligned_distance": [s["aligned"]["distance_before"], s["aligned"]["distance_after"]],
        "curve_max_test_err": s["curve-eval"]["test_err"]["max"],
        "curve_max_test_nll": s["curve-eval"]["test_nll"]["max"],
    }
    # part 2, on noisy labels: test error %, NLL and ECE of each method
    noisy = {
        "sgd": [(s[f"sgd-{i}"]["test_acc"], s[f"sgd-{i}"]["test_nll"], s[f"sgd-{i}"]["test_ece"]) for i in (1, 2)],
        "ind": (s["ind"]["ens_acc"], s["ind"]["ens_nll"], s["ind"]["ens_ece"]),
        "fge": (s["fge"]["ens_acc"], s["fge"]["ens_nll"], s["fge"]["ens_ece"]),
        "swa": (s["swa"]["swa_test_acc"], s["swa"]["swa_test_nll"], s["swa"]["swa_test_ece"]),
        "line_midpoint": (s["line"]["midpoint_acc"], s["line"]["midpoint_nll"], s["line"]["midpoint_ece"]),
        "one": (s["one"]["test_acc"], s["one"]["test_nll"], s["one"]["test_ece"]),
        "line_endpoints": (s["line"]["endpoint_ensemble_acc"], s["line"]["endpoint_ensemble_nll"],
                           s["line"]["endpoint_ensemble_ece"]),
        "espro": (s["espro"]["ensemble_acc"], s["espro"]["ensemble_nll"], s["espro"]["ensemble_ece"]),
    }
    for name, value in noisy.items():
        as_error = (lambda acc, nll, ece: {"test_err": 100.0 - acc, "test_nll": nll, "test_ece": ece})
        figures[f"noisy_{name}"] = [as_error(*v) for v in value] if name == "sgd" else as_error(*value)
    figures.update({"fge_size": s["fge"]["ensemble_size"], "swa_n": s["swa"]["swa_n"],
                    "espro_simplexes": s["espro"]["num_simplexes"], "espro_vertices": s["espro"]["num_vertices"],
                    "espro_samples": s["espro"]["num_test_samples"], "espro_volume": s["espro"]["volume"],
                    "spro_test_err": 100.0 - s["espro"]["ensemble_acc_by_simplexes"][0],
                    "label_noise": read_args(folder, "sgd-1").get("label_noise")})
    # the barrier: how far the worst point of a path rises above the worse endpoint
    figures["segment_barrier"] = figures["segment_max_test_err"] - max(endpoints)
    figures["curve_barrier"] = figures["curve_max_test_err"] - max(endpoints)
    figures["aligned_barrier"] = figures["aligned_max_test_err"] - max(endpoints)
    paths = {}
    for run, name in (("segment", "segment"), ("curve-eval", "curve")):
        points = np.load(os.path.join(folder, run, "curve.npz"))
        paths[name] = {"ts": points["ts"].tolist(), "te_err": points["te_err"].tolist(),
                       "tr_loss": points["tr_loss"].tolist()}
    with open(os.path.join(folder, "fge", "metrics.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["snapshot"] == "1"]
    fge = {"snapshot_acc": [float(r["test_acc"]) for r in rows], "ensemble_acc": [float(r["ens_acc"]) for r in rows]}
    with open(os.path.join(folder, "line", "subspace.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    line = {"alpha": [float(r["alpha"]) for r in rows], "test_err": [100.0 - float(r["test_acc"]) for r in rows],
            "pair_err": [100.0 - float(r["pair_acc"]) for r in rows]}
    plane = dict(np.load(os.path.join(folder, "plane", "plane.npz")))
    plane = {k: v.tolist() for k, v in plane.items()}
    plane["points"], plane["dx"], plane["dy"] = s["plane"]["points"], s["plane"]["dx"], s["plane"]["dy"]
    return {"figures": figures, "paths": paths, "fge": fge, "line": line, "plane": plane, "machine": machine()}


def read_args(folder: str, run: str) -> dict:
    with open(os.path.join(folder, run, "args.json")) as f:
        return json.load(f)


def machine() -> dict:
    return {"cpu": runtime.processes.cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "date": datetime.date.today().isoformat()}


def table(record: dict) -> list[list]:
    """Part 1's rows (mode connectivity): path, test error %, test NLL."""
    f = record["figures"]
    return [
        ["Endpoint 1 (seed 1)", f["endpoint_test_err"][0], f["endpoint_test_nll"][0]],
        ["Endpoint 2 (seed 2)", f["endpoint_test_err"][1], f["endpoint_test_nll"][1]],
        ["Straight segment, worst point", f["segment_max_test_err"], f["segment_max_test_nll"]],
        ["Straight segment after weight matching, worst point", f["aligned_max_test_err"], f["aligned_max_test_nll"]],
        ["Bezier curve, worst point", f["curve_max_test_err"], f["curve_max_test_nll"]],
    ]


def noisy_table(record: dict) -> list[list]:
    """Part 2's rows (noisy labels): method, test error %, test NLL, test ECE."""
    f = record["figures"]
    rows = [(f"SGD {i}", f["noisy_sgd"][i - 1]) for i in (1, 2)] + [
        (f"SWA: average of {f['swa_n']} models", f["noisy_swa"]),
        (f"FGE: ensemble of {f['fge_size']} snapshots", f["noisy_fge"]),
        ("One network, the line's schedule", f["noisy_one"]),
        ("Line: its midpoint", f["noisy_line_midpoint"]),
        ("Line: ensemble of its endpoints", f["noisy_line_endpoints"]),
        ("Ind: ensemble of SGD 1 and 2", f["noisy_ind"]),
        (f"ESPRO: {f['espro_samples']} points from each of {f['espro_simplexes']} simplexes", f["noisy_espro"]),
    ]
    return [[name, v["test_err"], v["test_nll"], v["test_ece"]] for name, v in rows]


# --------------------------------------------------------------------------- pictures

def draw(record: dict, folder: str) -> dict:
    """The demo's pictures, drawn from its record into ``folder``; returns their paths by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {"curve": os.path.join(folder, "curve_vs_segment.png"), "fge": os.path.join(folder, "fge_ensemble.png"),
             "noisy": os.path.join(folder, "noisy_labels.png")}
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
                                     title=f"FGE: ResNet20 on DIGITS, {noise_label(record)}")
    draw_noisy(record, paths["noisy"])
    return paths


def noise_label(record: dict) -> str:
    return f"{100 * (record['figures']['label_noise'] or 0):g}% of labels random"


def draw_noisy(record: dict, path: str) -> None:
    """The line's test error along alpha (each point, and each point with its mirror 1 - alpha
    ensembled), and to its right the other methods' errors, one marker each."""
    import matplotlib.pyplot as plt

    f, line = record["figures"], record["line"]
    fig, ax = plt.subplots(figsize=(6.2, 3.8), dpi=110)
    ax.plot(line["alpha"], line["test_err"], "-o", ms=3, color="tab:red", lw=2, label="line: the point at alpha")
    ax.plot(line["alpha"], line["pair_err"], "--", color="tab:red", lw=1.5, label="line: alpha and 1 - alpha ensembled")
    others = [("SGD (mean of 2)", sum(v["test_err"] for v in f["noisy_sgd"]) / 2, "black", "o"),
              ("one network, the line's schedule", f["noisy_one"]["test_err"], "tab:orange", "v"),
              ("SWA", f["noisy_swa"]["test_err"], "tab:green", "s"), ("FGE", f["noisy_fge"]["test_err"], "tab:olive", "D"),
              ("Ind (2 SGD)", f["noisy_ind"]["test_err"], "tab:blue", "^"),
              ("ESPRO (2 simplexes)", f["noisy_espro"]["test_err"], "tab:purple", "P")]
    # the other methods side by side to the right of the line, each at its own x: equal errors stay visible
    for k, (label, err, color, marker) in enumerate(others):
        ax.plot([1.12 + 0.07 * k], [err], marker, color=color, ms=7, label=f"{label}: {err:.1f}%")
    ax.axvline(1.06, color="0.8", lw=0.8)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlabel("alpha (0 and 1: the line's endpoints)")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"ResNet20 on DIGITS, {noise_label(record)}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
