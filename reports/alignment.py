"""Linear mode connectivity modulo permutation (scripts/alignment_table.sh's runs under
OUT_DIR/alignment/FashionMNIST/<model>/): for each model, the barrier of the straight segment between
two independently trained networks before and after alignment, and Bezier curves between aligned and
unaligned ends, every figure the mean ± standard deviation over the pairs found.

The barrier of a path is its worst point's test error minus the worse endpoint's (Git Re-Basin's
"loss barrier" in test error, in points); its train-loss barrier the same of the train loss.
"""
from __future__ import annotations

import os
import re

from tabulate import tabulate

from reports.summaries import MISSING, cell, difference, read_summary, require, stats

DATASET = "FashionMNIST"
MODELS = ("MLP3x512", "ResNet20", "ResNet20x4")
# (row, eval_curve.py run, the row its effect is against, the published finding for MLPs on MNIST: Git
# Re-Basin's for the matchings, REPAIR's for its rescaling)
PATHS = [
    ("segment, before alignment", "segment", None, ""),
    ("segment, weight matching", "segment-weights", "segment, before alignment", "barrier near 0"),
    ("segment, activation matching", "segment-activations", "segment, before alignment", "barrier near 0"),
    ("segment, weight matching + REPAIR", "segment-repair", "segment, before alignment", "REPAIR: lower still"),
    ("Bezier, unaligned ends", "eval-bezier", None, ""),
    ("Bezier, weight-matched end", "eval-bezier-weights", "Bezier, unaligned ends", ""),
]
METRICS = ("barrier", "loss_barrier", "max_test_err", "length")
PAIR_RUN = re.compile(r"^(segment|segment-weights|segment-activations|segment-repair|eval-bezier|"
                      r"eval-bezier-weights|aligned-weights|aligned-activations)-(\d+)$")


def _path(folder: str, run: str) -> dict:
    summary = read_summary(folder, run)
    require(summary, folder, run, "test_err", "train_loss")
    if summary is None:
        return dict.fromkeys(METRICS)
    err, loss = summary["test_err"], summary["train_loss"]
    return {"barrier": err["max"] - max(err["start"], err["end"]),
            "loss_barrier": loss["max"] - max(loss["start"], loss["end"]),
            "max_test_err": err["max"], "length": summary.get("length")}


def _distances(folder: str, k: int) -> dict:
    summary = read_summary(folder, f"aligned-weights-{k}")
    require(summary, folder, f"aligned-weights-{k}", "distance_before", "distance_after")
    if summary is None:
        return {"distance_before": None, "distance_after": None}
    return {"distance_before": summary["distance_before"], "distance_after": summary["distance_after"]}


def pairs_found(folder: str) -> list[int]:
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted({int(found.group(2)) for found in map(PAIR_RUN.match, names) if found})


def record(out_dir: str) -> dict:
    """Each model's figures pair by pair (k: networks k and k mod 3 + 1), means, standard deviations
    and the effects of alignment (per-pair differences); models without runs are left out."""
    out = {"dataset": DATASET, "models": {}}
    for model in MODELS:
        folder = os.path.join(out_dir, "alignment", DATASET, model)
        found = pairs_found(folder)
        if not found:
            continue
        per_pair = {name: [_path(folder, f"{run}-{k}") for k in found] for name, run, _, _ in PATHS}
        distances = [_distances(folder, k) for k in found]
        rows = []
        for name, run, against, finding in PATHS:
            if run == "segment-repair" and all(v["barrier"] is None for v in per_pair[name]):
                continue  # REPAIR's runs are the MLP's (models with BatchNorm recompute it instead)
            row = {"name": name, "against": against, "finding": finding,
                   "metrics": {m: stats([p[m] for p in per_pair[name]]) for m in METRICS}, "effects": {}}
            if against:
                row["effects"] = {m: stats([difference(a, b, m) for a, b in zip(per_pair[name], per_pair[against])])
                                  for m in ("barrier", "loss_barrier")}
            rows.append(row)
        out["models"][model] = {"pairs": found, "rows": rows,
                                "distance_before": stats([d["distance_before"] for d in distances]),
                                "distance_after": stats([d["distance_after"] for d in distances])}
    return out


def sections(found: dict) -> list[tuple[str, str]]:
    """(title, markdown) a model, or one section saying that no runs are there yet."""
    if not found["models"]:
        return [("Alignment, Fashion-MNIST: linear mode connectivity modulo permutation",
                 f"{MISSING} (no runs of scripts/alignment_table.sh yet)")]
    out = []
    for model, figures in found["models"].items():
        n = len(figures["pairs"])
        body = [[row["name"], cell(row["metrics"]["max_test_err"], seeds=n), cell(row["metrics"]["barrier"], seeds=n),
                 cell(row["metrics"]["loss_barrier"], 3, seeds=n), cell(row["metrics"]["length"], 1, seeds=n),
                 f"{cell(row['effects']['barrier'], signed=True, seeds=n)} (vs {row['against']})" if row["against"]
                 else "", row["finding"]] for row in figures["rows"]]
        header = ["path", "max test err %", "barrier: test err", "barrier: train loss", "length",
                  "effect on the barrier", "published (MLPs, MNIST)"]
        text = tabulate(body, header, tablefmt="github", disable_numparse=True)
        text += (f"\n\nL2 distance between the two networks: {cell(figures['distance_before'], 1, seeds=n)} before "
                 f"weight matching, {cell(figures['distance_after'], 1, seeds=n)} after.")
        out.append((f"Alignment, Fashion-MNIST, {model}, {n} pair{'s' * (n != 1)}: the straight segment and "
                    "Bezier curves before and after permutation alignment (Ainsworth et al. 2023; Jordan et al. "
                    "2023)", text))
    return out
