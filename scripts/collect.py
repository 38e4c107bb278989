"""Gather the table scripts' runs (their summary.json files) into the papers' tables, as markdown,
with the published numbers in a "paper" column beside ours; a missing run shows as "—".

    bash scripts/swa_table.sh data runs/tables
    python scripts/collect.py runs/tables --table swa --out runs/tables/swa.md

The folders are those the scripts write: OUT_DIR/curves/<dataset>/<model>/eval-{segment,Bezier,
PolyChain}, OUT_DIR/fge/CIFAR100/<model>/{endpoint-1,fge-run1,ind-2B,fge-3B,sse-1B,...},
OUT_DIR/swa/<dataset>/<model>/{sgd,swa-1B,swa-1.25B,swa-1.5B},
OUT_DIR/subspaces/CIFAR10/cResNet20/{standard-0,ind-0-1,swa-0,line-0,simplex3-layerwise-1,...} and
OUT_DIR/simplexes/<dataset>/VGG16/{base-1,ind-2,fge-run1,fge-3,espro}. Where a method has runs of
several seeds, a cell shows their mean.

--table fashion: scripts/fashion_tables.sh's OUT_DIR/fashion/FashionMNIST/MLP/ (every figure the mean ±
standard deviation over the seeds found, each effect the same of the per-seed differences, beside
the published CIFAR effect); --json FILE also writes its figures, seed by seed, as JSON.

    python scripts/collect.py runs/fashion --table fashion --json runs/fashion/fashion.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys

from tabulate import tabulate

MODELS = ("VGG16", "PreResNet164", "WideResNet28x10")
DATASETS = ("CIFAR10", "CIFAR100")
MISSING = "—"
# A published number that we could not confirm from a text available to us (both 2021 papers show
# these results in figures): never a guess in its place.
UNCONFIRMED = "unconfirmed"

# The published numbers, as printed (strings keep the papers' digits and their ± std).
# Transcribed from the original repositories' READMEs, which tabulate the papers' results:
#   curves: github.com/timgaripov/dnn-mode-connectivity README (commit 77b67db), "Evaluating the
#           curves", CIFAR-100 and CIFAR-10 tables: the curve results of Garipov et al. 2018
#           (arXiv 1802.10026, Table 1). Values: min train loss, max train loss, min test error %,
#           max test error %. The README calls the CIFAR-10 endpoint rows "Single".
#   fge:    the same README, "CIFAR-100": test accuracy % of Ind and FGE for 1, 2, 3 budgets
#           (arXiv 1802.10026, Table 2, which prints error rates). No SSE numbers there.
#   swa:    github.com/timgaripov/swa README (commit 411b2fc), "Results": test accuracy % of SGD
#           and of SWA for 1, 1.25, 1.5 budgets (Izmailov et al. 2018, arXiv 1803.05407, Table 1).
PAPER = {
    "curves": {
        "CIFAR100": {
            ("VGG16", "Endpoints"): ("0.89", "0.89", "27.5", "27.5"),
            ("VGG16", "Bezier"): ("0.48", "0.89", "27.4", "30.1"),
            ("VGG16", "PolyChain"): ("0.59", "1.05", "27.1", "30.8"),
            ("PreResNet164", "Endpoints"): ("0.49", "0.49", "21.6", "21.7"),
            ("PreResNet164", "Bezier"): ("0.26", "0.49", "21.3", "23.4"),
            ("PreResNet164", "PolyChain"): ("0.30", "0.49", "21.4", "23.6"),
            ("WideResNet28x10", "Endpoints"): ("0.20", "0.21", "18.6", "18.9"),
            ("WideResNet28x10", "Bezier"): ("0.11", "0.21", "18.3", "19.2"),
            ("WideResNet28x10", "PolyChain"): ("0.13", "0.21", "18.4", "19.0"),
        },
        "CIFAR10": {
            ("VGG16", "Endpoints"): ("0.24", "0.24", "6.79", "6.94"),
            ("VGG16", "Bezier"): ("0.14", "0.24", "6.79", "7.75"),
            ("VGG16", "PolyChain"): ("0.16", "0.27", "6.79", "8.08"),
            ("PreResNet164", "Endpoints"): ("0.18", "0.18", "4.76", "4.75"),  # sic: min > max
            ("PreResNet164", "Bezier"): ("0.09", "0.18", "4.45", "4.97"),
            ("PreResNet164", "PolyChain"): ("0.11", "0.18", "4.39", "5.13"),
            ("WideResNet28x10", "Endpoints"): ("0.08", "0.09", "3.69", "3.73"),
            ("WideResNet28x10", "Bezier"): ("0.05", "0.09", "3.49", "3.88"),
            ("WideResNet28x10", "PolyChain"): ("0.05", "0.10", "3.53", "4.29"),
        },
    },
    "fge": {  # budgets 1, 2, 3 (B = 200 epochs for every model)
        ("VGG16", "Ind"): ("72.5 ± 0.1", "74.8", "75.6"),
        ("VGG16", "FGE"): ("74.6 ± 0.1", "76.1", "76.6"),
        ("PreResNet164", "Ind"): ("78.4 ± 0.1", "80.5", "81.6"),
        ("PreResNet164", "FGE"): ("80.3 ± 0.2", "81.3", "81.7"),
        ("WideResNet28x10", "Ind"): ("80.8 ± 0.3", "82.4", "83.0"),
        ("WideResNet28x10", "FGE"): ("82.3 ± 0.2", "82.9", "83.2"),
    },
    "swa": {  # SGD, SWA 1, 1.25, 1.5 budgets
        "CIFAR100": {
            "VGG16": ("72.55 ± 0.10", "73.91 ± 0.12", "74.17 ± 0.15", "74.27 ± 0.25"),
            "PreResNet164": ("78.49 ± 0.36", "79.77 ± 0.17", "80.18 ± 0.23", "80.35 ± 0.16"),
            "WideResNet28x10": ("80.82 ± 0.23", "81.46 ± 0.23", "81.91 ± 0.27", "82.15 ± 0.27"),
        },
        "CIFAR10": {
            "VGG16": ("93.25 ± 0.16", "93.59 ± 0.16", "93.70 ± 0.22", "93.64 ± 0.18"),
            "PreResNet164": ("95.28 ± 0.10", "95.56 ± 0.11", "95.77 ± 0.04", "95.83 ± 0.03"),
            "WideResNet28x10": ("96.18 ± 0.11", "96.45 ± 0.11", "96.64 ± 0.08", "96.79 ± 0.05"),
        },
    },
}


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def field(folder: str, run: str, key: str, optional: bool = False):
    """``key`` of the run's summary.json, or None when the run is missing (not finished), or when
    it lacks an ``optional`` key (ECEs: summaries written before they were added have none)."""
    path = os.path.join(folder, run, "summary.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}")
    if key not in result:
        if optional:
            return None
        fail(f"{path} has no {key!r} (a run of another script in this folder?)")
    return result[key]


def number(value, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def pairs(ours, paper) -> list[str]:
    """Our values interleaved with the paper's: [ours_1, paper_1, ours_2, paper_2, ...]."""
    paper = paper or (MISSING,) * len(ours)
    return [cell for pair in zip(ours, paper) for cell in pair]


def curves_table(out_dir: str, dataset: str) -> str:
    rows = []
    for model in MODELS:
        folder = os.path.join(out_dir, "curves", dataset, model)
        for name, run in [("Endpoints", "eval-segment"), ("Segment", "eval-segment"),
                          ("Bezier", "eval-Bezier"), ("PolyChain", "eval-PolyChain")]:
            loss, err = field(folder, run, "train_loss"), field(folder, run, "test_err")
            if loss is None:
                ours = [None] * 4
            elif name == "Endpoints":  # the segment's two ends are the two trained networks
                ours = [min(loss["start"], loss["end"]), max(loss["start"], loss["end"]),
                        min(err["start"], err["end"]), max(err["start"], err["end"])]
            else:
                ours = [loss["min"], loss["max"], err["min"], err["max"]]
            paper = PAPER["curves"][dataset].get((model, name))
            rows.append([model, name] + pairs([number(v) for v in ours], paper))
    header = ["DNN", "curve", "min train loss", "paper", "max train loss", "paper",
              "min test err %", "paper", "max test err %", "paper"]
    return tabulate(rows, header, tablefmt="github", disable_numparse=True)


# (run, summary key) of the 1-budget cells that are not an ensemble of runs: Ind of one budget
# is a single network, FGE of one budget a single fge.py run.
ONE_BUDGET = {"Ind": ("endpoint-1", "test_acc"), "FGE": ("fge-run1", "ens_acc")}


def fge_table(out_dir: str) -> str:
    rows = []
    for model in MODELS:
        folder = os.path.join(out_dir, "fge", "CIFAR100", model)
        for method in ("Ind", "SSE", "FGE"):
            runs = [ONE_BUDGET.get(method, (f"{method.lower()}-1B", "ens_acc"))]
            runs += [(f"{method.lower()}-{budget}B", "ens_acc") for budget in (2, 3)]
            ours = [number(field(folder, run, key)) for run, key in runs]
            rows.append([model, method] + pairs(ours, PAPER["fge"].get((model, method))))
    header = ["DNN", "method", "1 budget", "paper", "2 budgets", "paper", "3 budgets", "paper"]
    return tabulate(rows, header, tablefmt="github", disable_numparse=True)


def swa_table(out_dir: str, dataset: str) -> str:
    rows = []
    for model in MODELS:
        folder = os.path.join(out_dir, "swa", dataset, model)
        runs = [("sgd", "sgd_test_acc")] + [(f"swa-{b}B", "swa_test_acc") for b in ("1", "1.25", "1.5")]
        ours = [number(field(folder, run, key)) for run, key in runs]
        rows.append([model] + pairs(ours, PAPER["swa"][dataset][model]))
    header = ["DNN", "SGD", "paper", "SWA 1 budget", "paper", "SWA 1.25 budgets", "paper",
              "SWA 1.5 budgets", "paper"]
    return tabulate(rows, header, tablefmt="github", disable_numparse=True)


def mean_field(folder: str, runs: list[str], key: str, pick=None, optional: bool = False):
    """The mean of ``key`` over the runs found (None if none is): seeds of one method."""
    values = [field(folder, run, key, optional) for run in runs]
    values = [pick(v) if pick else v for v in values if v is not None]
    return statistics.fmean(values) if values else None


SEEDS = ("0", "1")
SUBSPACES = [("line", "line"), ("line, layerwise", "line-layerwise"), ("curve (3 bends)", "curve")] + [
    (f"simplex, {n} vertices" + (", layerwise" if lw else ""), f"simplex{n}" + ("-layerwise" if lw else ""))
    for lw in (False, True) for n in (3, 4, 5, 6)]


# learning-subspaces' Ind of 2 (eval_ensembles.py): the mean over all 3 pairs of its 3 seeds
IND_PAIRS = ["ind-0-1", "ind-0-2", "ind-1-2"]


def subspaces_table(out_dir: str) -> str:
    """Wortsman et al.: the midpoint's accuracy and ECE, the endpoints' and their ensemble's accuracy."""
    folder = os.path.join(out_dir, "subspaces", "CIFAR10", "cResNet20")
    standard = ["standard-0", "standard-1", "standard-2"]
    rows = [["standard training", number(mean_field(folder, standard, "test_acc")), UNCONFIRMED,
             number(mean_field(folder, standard, "test_ece", optional=True), 4), MISSING,
             number(mean_field(folder, IND_PAIRS, "ens_acc")), UNCONFIRMED],
            ["SWA", number(mean_field(folder, [f"swa-{s}" for s in SEEDS], "swa_test_acc")), UNCONFIRMED,
             number(mean_field(folder, [f"swa-{s}" for s in SEEDS], "swa_test_ece", optional=True), 4), MISSING,
             MISSING, MISSING]]
    for name, run in SUBSPACES:
        runs = [f"{run}-{s}" for s in SEEDS]
        rows.append([name, number(mean_field(folder, runs, "midpoint_acc")), UNCONFIRMED,
                     number(mean_field(folder, runs, "midpoint_ece"), 4),
                     number(mean_field(folder, runs, "endpoint_acc", statistics.fmean)),
                     number(mean_field(folder, runs, "endpoint_ensemble_acc")), UNCONFIRMED])
    header = ["method", "midpoint acc % (a network's)", "paper", "midpoint ECE", "endpoints' acc %",
              "endpoints' ensemble acc % (Ind of 2)", "paper"]
    return tabulate(rows, header, tablefmt="github", disable_numparse=True)


def simplexes_table(out_dir: str, dataset: str) -> str:
    """Benton et al.: test accuracy of Ind, FGE and ESPRO with 1, 2 and 3 components."""
    folder = os.path.join(out_dir, "simplexes", dataset, "VGG16")
    espro = field(folder, "espro", "ensemble_acc_by_simplexes") or [None] * 3
    cells = {"Ind": [field(folder, "base-1", "test_acc"), field(folder, "ind-2", "ens_acc"),
                     field(folder, "ind-3", "ens_acc")],
             "FGE": [field(folder, "fge-run1", "ens_acc"), field(folder, "fge-2", "ens_acc"),
                     field(folder, "fge-3", "ens_acc")],
             "ESPRO": (list(espro) + [None] * 3)[:3]}
    rows = [["VGG16", method] + pairs([number(v) for v in values], (UNCONFIRMED,) * 3)
            for method, values in cells.items()]
    header = ["DNN", "method", "1 component", "paper", "2 components", "paper", "3 components", "paper"]
    return tabulate(rows, header, tablefmt="github", disable_numparse=True)


# --------------------------------------------------------------------------- Fashion-MNIST in miniature

FASHION = os.path.join("fashion", "FashionMNIST", "MLP")
# runs of one seed k are named <name>-k (scripts/fashion_tables.sh)
SEED_RUN = re.compile(r"^(segment|eval-bezier|eval-polychain|ind-2B|fge-2B|sse-1B|sse-2B|sgd|swa-1B|swa-1\.5B|line|"
                      r"ind-line|espro)-(\d+)$")


def _published(text: str) -> float:
    return float(text.split(" ")[0])  # "72.5 ± 0.1" -> 72.5


def paper_effects() -> dict:
    """The published CIFAR effects, from PAPER's VGG16 entries: {(row, metric): {dataset: value}}, in points of
    test error (accuracies turned into errors) or in train loss, the later method minus the earlier."""
    curves, fge, swa = PAPER["curves"], PAPER["fge"], PAPER["swa"]
    out = {}
    for curve in ("Bezier", "PolyChain"):  # max along the curve minus the endpoints' max (min loss, max loss, min err, max err)
        out[(curve, "test_err")] = {d: float(curves[d][("VGG16", curve)][3]) - float(curves[d][("VGG16", "Endpoints")][3])
                                    for d in DATASETS}
        out[(curve, "train_loss")] = {d: float(curves[d][("VGG16", curve)][1]) - float(curves[d][("VGG16", "Endpoints")][1])
                                      for d in DATASETS}
    for budget, column in (("1B", 0), ("2B", 1)):  # CIFAR-100 only: the README's Table 2
        out[(f"FGE {budget}", "test_err")] = {"CIFAR100": _published(fge[("VGG16", "Ind")][column])
                                              - _published(fge[("VGG16", "FGE")][column])}
    for name, column in (("SWA 1B", 1), ("SWA 1.5B", 3)):
        out[(name, "test_err")] = {d: _published(swa[d]["VGG16"][0]) - _published(swa[d]["VGG16"][column])
                                   for d in DATASETS}
    return out


PAPER_SOURCES = (
    "Published effects (CIFAR, VGG16; collect.py's PAPER): curves, the max test error (max train loss) along the curve "
    "minus the endpoints' (the mode-connectivity README's tables, e.g. CIFAR-10 Bezier 7.75 - 6.94); FGE - Ind, "
    "FGE's test accuracy minus Ind's as error (its CIFAR-100 table: 74.6 - 72.5 at 1 budget, 76.1 - 74.8 at 2); "
    "SWA - SGD, as error (the SWA README: CIFAR-10 93.59 - 93.25 at 1 budget, 93.64 - 93.25 at 1.5; CIFAR-100 "
    "73.91 - 72.55, 74.27 - 72.55). Not in PAPER: SSE, the straight segment (a figure in the paper), and the "
    "2021 papers' subspaces (figures only: unconfirmed).")


def _error(acc):
    return None if acc is None else 100.0 - acc


def _worst(summary, which: str = "max"):
    """(max test err, max train loss) of an eval_curve.py summary: along it, or of its two ends."""
    if summary is None:
        return None, None
    err, loss = summary["test_err"], summary["train_loss"]
    if which == "ends":
        return max(err["start"], err["end"]), max(loss["start"], loss["end"])
    return err["max"], loss["max"]


def _summary(folder: str, run: str):
    path = os.path.join(folder, run, "summary.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}")


def _metric(folder: str, run: str, acc_key: str, nll_key: str) -> dict:
    summary = _summary(folder, run)
    if summary is None:
        return {"test_err": None, "test_nll": None}
    for key in (acc_key, nll_key):
        if key not in summary:
            fail(f"{os.path.join(folder, run, 'summary.json')} has no {key!r} (a run of another script in this folder?)")
    return {"test_err": _error(summary[acc_key]), "test_nll": summary[nll_key]}


def _curve_row(folder, k, name):
    run, which = {"Endpoints": ("segment", "ends"), "Segment": ("segment", "max"),
                  "Bezier": ("eval-bezier", "max"), "PolyChain": ("eval-polychain", "max")}[name]
    err, loss = _worst(_summary(folder, f"{run}-{k}"), which)
    return {"test_err": err, "train_loss": loss}


# table -> [(row, metrics of seed k: (folder, k) -> {metric: value}, the row its effect is against)]
FASHION_ROWS = {
    "curves": [(name, lambda f, k, n=name: _curve_row(f, k, n), None if name == "Endpoints" else "Endpoints")
               for name in ("Endpoints", "Segment", "Bezier", "PolyChain")],
    "ensembles": [
        ("Ind 1B", lambda f, k: _metric(f, f"endpoint-{k}", "test_acc", "test_nll"), None),
        ("SSE 1B", lambda f, k: _metric(f, f"sse-1B-{k}", "ens_acc", "ens_nll"), "Ind 1B"),
        ("FGE 1B", lambda f, k: _metric(f, f"fge-{k}", "ens_acc", "ens_nll"), "Ind 1B"),
        ("Ind 2B", lambda f, k: _metric(f, f"ind-2B-{k}", "ens_acc", "ens_nll"), None),
        ("SSE 2B", lambda f, k: _metric(f, f"sse-2B-{k}", "ens_acc", "ens_nll"), "Ind 2B"),
        ("FGE 2B", lambda f, k: _metric(f, f"fge-2B-{k}", "ens_acc", "ens_nll"), "Ind 2B")],
    "averaging": [
        ("SGD 1B", lambda f, k: _metric(f, f"sgd-{k}", "sgd_test_acc", "sgd_test_nll"), None),
        ("SWA 1B", lambda f, k: _metric(f, f"swa-1B-{k}", "swa_test_acc", "swa_test_nll"), "SGD 1B"),
        ("SWA 1.5B", lambda f, k: _metric(f, f"swa-1.5B-{k}", "swa_test_acc", "swa_test_nll"), "SGD 1B")],
    "subspaces": [
        ("SGD, the line's schedule", lambda f, k: _metric(f, f"standard-{k}", "test_acc", "test_nll"), None),
        ("line, midpoint", lambda f, k: _metric(f, f"line-{k}", "midpoint_acc", "midpoint_nll"),
         "SGD, the line's schedule"),
        ("Ind of 2 SGD (logits)", lambda f, k: _metric(f, f"ind-line-{k}", "ens_acc", "ens_nll"), None),
        ("line, its endpoints' ensemble", lambda f, k: _metric(f, f"line-{k}", "endpoint_ensemble_acc",
                                                               "endpoint_ensemble_nll"), "Ind of 2 SGD (logits)"),
        ("Ind of 2 SGD (probabilities)", lambda f, k: _metric(f, f"espro-{k}", "start_ensemble_acc",
                                                              "start_ensemble_nll"), None),
        ("ESPRO, 2 simplexes", lambda f, k: _metric(f, f"espro-{k}", "ensemble_acc", "ensemble_nll"),
         "Ind of 2 SGD (probabilities)")],
}
FASHION_METRICS = {"curves": ("test_err", "train_loss")}  # the others: test_err, test_nll
FASHION_TITLES = {
    "curves": "the worst point along each path (Garipov et al. 2018, Table 1)",
    "ensembles": "Ind, SSE and FGE at 1 and 2 budgets (Garipov et al. 2018, Table 2)",
    "averaging": "SWA against SGD (Izmailov et al. 2018, Table 1)",
    "subspaces": "a learned line and ESPRO (Wortsman et al. 2021; Benton et al. 2021)",
}


def _stats(values: list) -> dict:
    found = [v for v in values if v is not None]
    return {"values": values, "n": len(found), "mean": statistics.fmean(found) if found else None,
            "std": statistics.stdev(found) if len(found) > 1 else None}


def fashion_seeds(folder: str) -> list[int]:
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted({int(m.group(2)) for m in map(SEED_RUN.match, names) if m})


def fashion_record(out_dir: str) -> dict:
    """Every figure of the Fashion-MNIST tables, seed by seed, with its mean and standard deviation; each
    effect (a row minus the row it is against) the same of the per-seed differences, with the paper's."""
    folder = os.path.join(out_dir, FASHION)
    seeds, published = fashion_seeds(folder), paper_effects()
    record = {"dataset": "FashionMNIST", "model": "MLP", "seeds": seeds, "paper_sources": PAPER_SOURCES, "tables": {}}
    for table, rows in FASHION_ROWS.items():
        per_seed = {name: [metrics(folder, k) for k in seeds] for name, metrics, _ in rows}
        out = []
        for name, _, against in rows:
            keys = FASHION_METRICS.get(table, ("test_err", "test_nll"))
            row = {"name": name, "against": against,
                   "metrics": {m: _stats([s[m] for s in per_seed[name]]) for m in keys}, "effects": {}}
            if against:
                for m in keys:
                    pairs_ = zip(per_seed[name], per_seed[against])
                    effect = _stats([None if a[m] is None or b[m] is None else a[m] - b[m] for a, b in pairs_])
                    effect["paper"] = published.get((name.split(",")[0], m), {})
                    row["effects"][m] = effect
            out.append(row)
        record["tables"][table] = out
    return record


def _cell(stats: dict | None, digits: int = 2, signed: bool = False, seeds: int = 0) -> str:
    if not stats or stats["mean"] is None:
        return MISSING
    text = f"{stats['mean']:{'+' if signed else ''}.{digits}f}"
    if stats["std"] is not None:
        text += f" ± {stats['std']:.{digits}f}"
    return text + (f" (n={stats['n']})" if stats["n"] < seeds else "")


def _paper(effect: dict | None, dataset: str, digits: int = 2) -> str:
    value = (effect or {}).get("paper", {}).get(dataset)
    return MISSING if value is None else f"{value:+.{digits}f}"


def fashion_tables(record: dict) -> list[tuple[str, str]]:
    n, sections = len(record["seeds"]), []
    for table, rows in record["tables"].items():
        body = []
        for row in rows:
            m, e = row["metrics"], row["effects"]
            if table == "curves":
                body.append([row["name"], _cell(m.get("test_err"), seeds=n), _cell(m.get("train_loss"), 3, seeds=n),
                             _cell(e.get("test_err"), signed=True, seeds=n), _cell(e.get("train_loss"), 3, True, n)]
                            + [f"{_paper(e.get('test_err'), d)} / {_paper(e.get('train_loss'), d)}"
                               if row["against"] else "" for d in DATASETS])
            else:
                paper = ([_paper(e.get("test_err"), d) if row["against"] else "" for d in DATASETS]
                         if table != "subspaces" else [UNCONFIRMED if row["against"] else ""])
                body.append([row["name"], _cell(m.get("test_err"), seeds=n), _cell(m.get("test_nll"), 3, seeds=n),
                             (f"{_cell(e.get('test_err'), signed=True, seeds=n)} (vs {row['against']})"
                              if row["against"] else "")] + paper)
        if table == "curves":
            header = ["path", "max test err %", "max train loss", "- endpoints: err", "- endpoints: loss",
                      "paper CIFAR-10: err / loss", "paper CIFAR-100: err / loss"]
        else:
            header = ["method", "test err %", "test NLL", "effect on test err"] + (
                ["paper CIFAR-10", "paper CIFAR-100"] if table != "subspaces" else ["paper"])
        title = f"Fashion-MNIST {table}, MLP, {n} seed{'s' * (n != 1)}: {FASHION_TITLES[table]}"
        sections.append((title, tabulate(body, header, tablefmt="github", disable_numparse=True)))
    sections[-1] = (sections[-1][0], sections[-1][1] + "\n\n" + PAPER_SOURCES)
    return sections


def report(out_dir: str, table: str) -> str:
    """The markdown document: one section per table (and dataset)."""
    sections = []
    if table in ("curves", "all"):
        for dataset in reversed(DATASETS):
            sections.append((f"Curves, {dataset}: train loss and test error along the curves "
                             "(Garipov et al. 2018, Table 1)", curves_table(out_dir, dataset)))
    if table in ("fge", "all"):
        sections.append(("FGE, SSE and independent ensembles, CIFAR100: test accuracy % "
                         "(Garipov et al. 2018, Table 2; B = 200 epochs)", fge_table(out_dir)))
    if table in ("swa", "all"):
        for dataset in reversed(DATASETS):
            sections.append((f"SWA and SGD, {dataset}: test accuracy % (Izmailov et al. 2018, Table 1)",
                             swa_table(out_dir, dataset)))
    if table in ("subspaces", "all"):
        sections.append(("Subspaces, CIFAR10: cResNet20 lines, curves and simplexes learned from scratch, test "
                         "accuracy % and ECE (Wortsman et al. 2021, Figures 4 and 5; mean of the seeds)",
                         subspaces_table(out_dir)))
    if table in ("simplexes", "all"):
        for dataset in reversed(DATASETS):
            sections.append((f"Simplexes, {dataset}: ESPRO against Ind and FGE at equal components, test accuracy % "
                             "(Benton et al. 2021)", simplexes_table(out_dir, dataset)))
    if table == "fashion" or (table == "all" and os.path.isdir(os.path.join(out_dir, FASHION))):
        sections += fashion_tables(fashion_record(out_dir))
    return "\n\n".join(f"## {title}\n\n{text}" for title, text in sections) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the table scripts' output folder")
    parser.add_argument("--table", choices=("curves", "fge", "swa", "subspaces", "simplexes", "fashion", "all"),
                        default="all", help="which table (all: fashion too where its runs are)")
    parser.add_argument("--out", metavar="FILE.md", help="also write the tables to this file")
    parser.add_argument("--json", metavar="FILE.json", help="with --table fashion: also write its figures, seed by "
                        "seed, with their means, standard deviations and the published effects, to this file")
    parser.error = fail  # a mistake is one error: line and exit status 2, as in the other scripts
    args = parser.parse_args(argv)
    if not os.path.isdir(args.out_dir):
        fail(f"{args.out_dir} is not a folder (the table scripts' OUT_DIR)")
    if args.json and args.table != "fashion":
        fail("--json goes with --table fashion")
    text = report(args.out_dir, args.table)
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(fashion_record(args.out_dir), f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
