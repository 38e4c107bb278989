"""The published numbers that the tables put beside ours, as printed in the original repositories'
READMEs, and the CIFAR effects (a method minus its baseline) that the Fashion-MNIST tables compare
with ours by sign and size.
"""
from __future__ import annotations

MODELS = ("VGG16", "PreResNet164", "WideResNet28x10")
DATASETS = ("CIFAR10", "CIFAR100")
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
    "Published effects (CIFAR, VGG16; reports/published.py): curves, the max test error (max train loss) along the curve "
    "minus the endpoints' (the mode-connectivity README's tables, e.g. CIFAR-10 Bezier 7.75 - 6.94); FGE - Ind, "
    "FGE's test accuracy minus Ind's as error (its CIFAR-100 table: 74.6 - 72.5 at 1 budget, 76.1 - 74.8 at 2); "
    "SWA - SGD, as error (the SWA README: CIFAR-10 93.59 - 93.25 at 1 budget, 93.64 - 93.25 at 1.5; CIFAR-100 "
    "73.91 - 72.55, 74.27 - 72.55). Not in PAPER: SSE, the straight segment (a figure in the paper), and the "
    "2021 papers' subspaces (figures only: unconfirmed).")
