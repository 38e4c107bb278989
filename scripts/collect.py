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
"""
from __future__ import annotations

import argparse
import json
import os
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
    return "\n\n".join(f"## {title}\n\n{text}" for title, text in sections) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the table scripts' output folder")
    parser.add_argument("--table", choices=("curves", "fge", "swa", "subspaces", "simplexes", "all"), default="all",
                        help="which table")
    parser.add_argument("--out", metavar="FILE.md", help="also write the tables to this file")
    parser.error = fail  # a mistake is one error: line and exit status 2, as in the other scripts
    args = parser.parse_args(argv)
    if not os.path.isdir(args.out_dir):
        fail(f"{args.out_dir} is not a folder (the table scripts' OUT_DIR)")
    text = report(args.out_dir, args.table)
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
