"""The papers' tables in miniature on Fashion-MNIST (scripts/fashion_tables.sh's runs under
OUT_DIR/fashion/FashionMNIST/MLP/): every figure the mean ± standard deviation over the seeds found,
each effect (a row minus the row it is against) the same of the per-seed differences, beside the
published CIFAR effect where there is one.

``record(out_dir)`` gathers the figures seed by seed (the JSON of ``collect.py --json``);
``sections(record)`` renders them as markdown tables.
"""
from __future__ import annotations

import os
import re

from tabulate import tabulate

from reports.published import DATASETS, PAPER_SOURCES, paper_effects
from reports.summaries import MISSING, UNCONFIRMED, cell, difference, error, read_summary, require, stats

FOLDER = os.path.join("fashion", "FashionMNIST", "MLP")
# runs of one seed k are named <name>-k (scripts/fashion_tables.sh)
SEED_RUN = re.compile(r"^(segment|eval-bezier|eval-polychain|ind-2B|fge-2B|sse-1B|sse-2B|sgd|swa-1B|swa-1\.5B|line|"
                      r"ind-line|espro|swag|swag-diag|rays|hessian-sgd|hessian-swa-1B|hessian-fge)-(\d+)$")


def _metric(folder: str, run: str, acc_key: str, nll_key: str, ece_key: str | None = None) -> dict:
    """Test error %, NLL (and ECE) of one run; an NLL may be missing (an ensemble by the logit rule
    need not report one), the accuracy may not."""
    summary = read_summary(folder, run)
    if summary is None:
        return {"test_err": None, "test_nll": None, "test_ece": None}
    require(summary, folder, run, acc_key)
    return {"test_err": error(summary[acc_key]), "test_nll": summary.get(nll_key),
            "test_ece": summary.get(ece_key) if ece_key else None}


def _curve(folder: str, k: int, name: str) -> dict:
    """The worst test error and train loss along a path, or (Endpoints) of the segment's two ends."""
    run, which = {"Endpoints": ("segment", "ends"), "Segment": ("segment", "max"),
                  "Bezier": ("eval-bezier", "max"), "PolyChain": ("eval-polychain", "max")}[name]
    summary = read_summary(folder, f"{run}-{k}")
    require(summary, folder, f"{run}-{k}", "test_err", "train_loss")
    if summary is None:
        return {"test_err": None, "train_loss": None}
    err, loss = summary["test_err"], summary["train_loss"]
    if which == "ends":
        return {"test_err": max(err["start"], err["end"]), "train_loss": max(loss["start"], loss["end"])}
    return {"test_err": err["max"], "train_loss": loss["max"]}


# the points of the landscape table: (row, the run it is, its place in rays.py's --ckpt list, hessian run)
LANDSCAPE_POINTS = [("SGD", 0, "hessian-sgd"), ("SWA", 1, "hessian-swa-1B"), ("FGE, last snapshot", 2, "hessian-fge")]


def _landscape(folder: str, k: int, index: int, hessian: str) -> dict:
    """Width along random rays (rays.py: train loss with L2, and train NLL) and the Hessian's top
    eigenvalue and trace (hessian.py) at one point. A width is None where the loss stays below the
    rise within the rays' length, as where the run is missing."""
    rays, curvature = read_summary(folder, f"rays-{k}"), read_summary(folder, f"{hessian}-{k}")
    require(rays, folder, f"rays-{k}", "width", "nll_width")
    require(curvature, folder, f"{hessian}-{k}", "eigenvalues")
    out = {"width": None, "nll_width": None, "top_eigenvalue": None, "trace": None}
    if rays is not None and index < len(rays["width"]):
        out.update(width=rays["width"][index], nll_width=rays["nll_width"][index])
    if curvature is not None:
        out.update(top_eigenvalue=curvature["eigenvalues"][0], trace=curvature.get("trace"))
    return out


def _rows():
    """table -> [(row, metrics of seed k: (folder, k) -> {metric: value}, the row its effect is against)]"""
    def m(*keys):
        return lambda f, k: _metric(f, keys[0].format(k=k), *keys[1:])

    return {
        "curves": [(name, lambda f, k, n=name: _curve(f, k, n), None if name == "Endpoints" else "Endpoints")
                   for name in ("Endpoints", "Segment", "Bezier", "PolyChain")],
        "ensembles": [
            ("Ind 1B", m("endpoint-{k}", "test_acc", "test_nll"), None),
            ("SSE 1B", m("sse-1B-{k}", "ens_acc", "ens_nll"), "Ind 1B"),
            ("FGE 1B", m("fge-{k}", "ens_acc", "ens_nll"), "Ind 1B"),
            ("Ind 2B", m("ind-2B-{k}", "ens_acc", "ens_nll"), None),
            ("SSE 2B", m("sse-2B-{k}", "ens_acc", "ens_nll"), "Ind 2B"),
            ("FGE 2B", m("fge-2B-{k}", "ens_acc", "ens_nll"), "Ind 2B")],
        "averaging": [
            ("SGD 1B", m("sgd-{k}", "sgd_test_acc", "sgd_test_nll"), None),
            ("SWA 1B", m("swa-1B-{k}", "swa_test_acc", "swa_test_nll"), "SGD 1B"),
            ("SWA 1.5B", m("swa-1.5B-{k}", "swa_test_acc", "swa_test_nll"), "SGD 1B")],
        "subspaces": [
            ("SGD, the line's schedule", m("standard-{k}", "test_acc", "test_nll"), None),
            ("line, midpoint", m("line-{k}", "midpoint_acc", "midpoint_nll"), "SGD, the line's schedule"),
            ("Ind of 2 SGD (logits)", m("ind-line-{k}", "ens_acc", "ens_nll"), None),
            ("line, its endpoints' ensemble", m("line-{k}", "endpoint_ensemble_acc", "endpoint_ensemble_nll"),
             "Ind of 2 SGD (logits)"),
            ("Ind of 2 SGD (probabilities)", m("espro-{k}", "start_ensemble_acc", "start_ensemble_nll"), None),
            ("ESPRO, 2 simplexes", m("espro-{k}", "ensemble_acc", "ensemble_nll"), "Ind of 2 SGD (probabilities)")],
        # SGD's and SWA's from swa.py (the SWAG code's 20 bins), SWAG's Bayesian model averages from swag.py
        "calibration": [
            ("SGD", m("sgd-{k}", "sgd_test_acc", "sgd_test_nll", "sgd_test_ece"), None),
            ("SWA", m("swa-1B-{k}", "swa_test_acc", "swa_test_nll", "swa_test_ece"), "SGD"),
            ("SWAG-Diagonal", m("swag-diag-{k}", "swag_acc", "swag_nll", "swag_ece"), "SGD"),
            ("SWAG", m("swag-{k}", "swag_acc", "swag_nll", "swag_ece"), "SGD")],
        "landscape": [(name, lambda f, k, i=index, h=hessian: _landscape(f, k, i, h), None if index == 0 else "SGD")
                      for name, index, hessian in LANDSCAPE_POINTS],
    }


METRICS = {"curves": ("test_err", "train_loss"), "calibration": ("test_err", "test_nll", "test_ece"),
           "landscape": ("width", "nll_width", "top_eigenvalue", "trace")}  # the others: test_err, test_nll
TITLES = {
    "curves": "the worst point along each path (Garipov et al. 2018, Table 1)",
    "ensembles": "Ind, SSE and FGE at 1 and 2 budgets (Garipov et al. 2018, Table 2)",
    "averaging": "SWA against SGD (Izmailov et al. 2018, Table 1)",
    "subspaces": "a learned line and ESPRO (Wortsman et al. 2021; Benton et al. 2021)",
    "calibration": "SWAG against SWA and SGD (Maddox et al. 2019), ECE of 20 equal-width bins",
    "landscape": "the width of the minimum along 10 random rays and the Hessian's curvature (Izmailov et al. "
                 "2018, Figure 5; PyHessian)",
}
# The published direction of an effect where the paper gives it in figures only (no number to copy):
# SWAG's NLL and ECE below SGD's and SWA's (Maddox et al. 2019, Table 1 and Figure 3 on CIFAR); SWA's
# solution wider than SGD's along random rays (Izmailov et al. 2018, Figure 5).
# The 2021 papers' claims in figures (no number to copy): a line's midpoint below standard training's test
# error (Wortsman et al. 2021, Figure 4), ESPRO's ensemble below Ind's of as many networks (Benton et al. 2021).
SUBSPACE_CLAIMS = ("line, midpoint", "ESPRO, 2 simplexes")
PUBLISHED_SIGN = {("calibration", "SWA"): "NLL lower", ("calibration", "SWAG-Diagonal"): "NLL, ECE lower",
                  ("calibration", "SWAG"): "NLL, ECE lower", ("landscape", "SWA"): "wider"}


def seeds(folder: str) -> list[int]:
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted({int(found.group(2)) for found in map(SEED_RUN.match, names) if found})


def record(out_dir: str) -> dict:
    """Every figure of the Fashion-MNIST tables, seed by seed, with its mean and standard deviation; each
    effect (a row minus the row it is against) the same of the per-seed differences, with the paper's."""
    folder = os.path.join(out_dir, FOLDER)
    found, published = seeds(folder), paper_effects()
    out = {"dataset": "FashionMNIST", "model": "MLP", "seeds": found, "paper_sources": PAPER_SOURCES, "tables": {}}
    for table, rows in _rows().items():
        per_seed = {name: [metrics(folder, k) for k in found] for name, metrics, _ in rows}
        keys = METRICS.get(table, ("test_err", "test_nll"))
        out["tables"][table] = []
        for name, _, against in rows:
            row = {"name": name, "against": against,
                   "metrics": {m: stats([s[m] for s in per_seed[name]]) for m in keys}, "effects": {}}
            if against:
                for m in keys:
                    effect = stats([difference(a, b, m) for a, b in zip(per_seed[name], per_seed[against])])
                    effect["paper"] = published.get((name.split(",")[0], m), {})
                    if (table, name) in PUBLISHED_SIGN:
                        effect["paper_sign"] = PUBLISHED_SIGN[(table, name)]
                    row["effects"][m] = effect
            out["tables"][table].append(row)
    return out


def _paper(effect: dict | None, dataset: str, digits: int = 2) -> str:
    value = (effect or {}).get("paper", {}).get(dataset)
    return MISSING if value is None else f"{value:+.{digits}f}"


def _versus(row: dict, metric: str, n: int, digits: int = 2) -> str:
    if not row["against"]:
        return ""
    return f"{cell(row['effects'].get(metric), digits, True, n)} (vs {row['against']})"


def _body(table: str, rows: list[dict], n: int) -> tuple[list[str], list[list[str]]]:
    body = []
    for row in rows:
        m, e, against = row["metrics"], row["effects"], row["against"]
        sign = PUBLISHED_SIGN.get((table, row["name"]), MISSING) if against else ""
        if table == "curves":
            body.append([row["name"], cell(m["test_err"], seeds=n), cell(m["train_loss"], 3, seeds=n),
                         cell(e.get("test_err"), signed=True, seeds=n), cell(e.get("train_loss"), 3, True, n)]
                        + [f"{_paper(e.get('test_err'), d)} / {_paper(e.get('train_loss'), d)}" if against else ""
                           for d in DATASETS])
        elif table == "calibration":
            body.append([row["name"], cell(m["test_err"], seeds=n), cell(m["test_nll"], 3, seeds=n),
                         cell(m["test_ece"], 4, seeds=n), _versus(row, "test_nll", n, 3), _versus(row, "test_ece", n, 4),
                         sign])
        elif table == "landscape":
            body.append([row["name"], cell(m["width"], seeds=n), cell(m["nll_width"], seeds=n),
                         cell(m["top_eigenvalue"], 3, seeds=n), cell(m["trace"], 1, seeds=n),
                         _versus(row, "width", n), _versus(row, "top_eigenvalue", n, 3), sign])
        else:
            paper = ([_paper(e.get("test_err"), d) if against else "" for d in DATASETS]
                     if table != "subspaces" else [UNCONFIRMED if against else ""])
            body.append([row["name"], cell(m["test_err"], seeds=n), cell(m["test_nll"], 3, seeds=n),
                         _versus(row, "test_err", n)] + paper)
    header = {
        "curves": ["path", "max test err %", "max train loss", "- endpoints: err", "- endpoints: loss",
                   "paper CIFAR-10: err / loss", "paper CIFAR-100: err / loss"],
        "subspaces": ["method", "test err %", "test NLL", "effect on test err", "paper"],
        "calibration": ["method", "test err %", "test NLL", "test ECE", "effect on NLL", "effect on ECE",
                        "paper (CIFAR)"],
        "landscape": ["point", "width (train loss + 0.1)", "width (train NLL + 0.1)", "top Hessian eigenvalue",
                      "Hessian trace", "effect on width", "effect on top eigenvalue", "paper (CIFAR)"],
    }.get(table, ["method", "test err %", "test NLL", "effect on test err", "paper CIFAR-10", "paper CIFAR-100"])
    return header, body


NOTES = {
    "landscape": "Widths: the distance along a random unit direction at which the train loss (with the L2 term, "
                 "rays.py's width) or the train NLL (nll_width), averaged over the 10 directions, first rises by "
                 "0.1 above its value at the point; — where it stays below within the rays' 40. The L2 term alone "
                 "caps the first near sqrt(2 x 0.1 / 5e-4) = 20. Hessian: of the train loss on the first 5,000 "
                 "training images (hessian.py; trace by Hutchinson's estimator).",
}


def sections(found: dict) -> list[tuple[str, str]]:
    """(title, markdown) of each table of ``record``'s figures, the published sources after the last."""
    n, out = len(found["seeds"]), []
    for table, rows in found["tables"].items():
        header, body = _body(table, rows, n)
        text = tabulate(body, header, tablefmt="github", disable_numparse=True)
        if table in NOTES:
            text += "\n\n" + NOTES[table]
        out.append((f"Fashion-MNIST {table}, MLP, {n} seed{'s' * (n != 1)}: {TITLES[table]}", text))
    out[-1] = (out[-1][0], out[-1][1] + "\n\n" + PAPER_SOURCES)
    return out
