"""The CIFAR tables of the table scripts (scripts/curves_table.sh, fge_table.sh, swa_table.sh,
subspaces_table.sh, simplexes_table.sh), our figures beside the published ones; a cell shows the
mean where a method has runs of several seeds.

The folders are those the scripts write: OUT_DIR/curves/<dataset>/<model>/eval-{segment,Bezier,
PolyChain}, OUT_DIR/fge/CIFAR100/<model>/{endpoint-1,fge-run1,ind-2B,fge-3B,sse-1B,...},
OUT_DIR/swa/<dataset>/<model>/{sgd,swa-1B,swa-1.25B,swa-1.5B},
OUT_DIR/subspaces/CIFAR10/cResNet20/{standard-0,ind-0-1,swa-0,line-0,simplex3-layerwise-1,...} and
OUT_DIR/simplexes/<dataset>/VGG16/{base-1,ind-2,fge-run1,fge-3,espro}.
"""
from __future__ import annotations

import os
import statistics

from tabulate import tabulate

from reports.published import DATASETS, MODELS, PAPER
from reports.summaries import MISSING, UNCONFIRMED, field, mean_field, number, pairs


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


def sections(out_dir: str, table: str) -> list[tuple[str, str]]:
    """(title, markdown table) of ``table`` (curves, fge, swa, subspaces, simplexes or all), a table a dataset."""
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
    return sections
