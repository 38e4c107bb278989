"""The runs' summary.json files as the tables read them, and the cells that show their figures:
a missing run (not finished yet) is a "—", never an error; a run of another script is one."""
from __future__ import annotations

import json
import os
import statistics


class RunFolderError(Exception):
    """A run's summary that the tables cannot read (a broken file, a run of another script): the
    user's mistake, one error line. Not runtime's UserError: printing a table should not cost
    torch's import, which the runtime package makes."""

MISSING = "—"
# A published number that we could not confirm from a text available to us (both 2021 papers show
# these results in figures): never a guess in its place.
UNCONFIRMED = "unconfirmed"


def read_summary(folder: str, run: str) -> dict | None:
    """``folder/run/summary.json``, or None while the run has not finished (it has no summary yet)."""
    path = os.path.join(folder, run, "summary.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"cannot read {path}: {exc}") from None


def require(summary: dict | None, folder: str, run: str, *keys: str) -> None:
    """A summary that lacks one of ``keys`` is a run of another script in this folder: an error."""
    for key in keys:
        if summary is not None and key not in summary:
            path = os.path.join(folder, run, "summary.json")
            raise RunFolderError(f"{path} has no {key!r} (a run of another script in this folder?)")


def field(folder: str, run: str, key: str, optional: bool = False):
    """``key`` of the run's summary.json, or None when the run is missing (not finished), or when
    it lacks an ``optional`` key (ECEs: summaries written before they were added have none)."""
    summary = read_summary(folder, run)
    if summary is None or (optional and key not in summary):
        return None
    require(summary, folder, run, key)
    return summary[key]


def mean_field(folder: str, runs: list[str], key: str, pick=None, optional: bool = False):
    """The mean of ``key`` over the runs found (None if none is): seeds of one method."""
    values = [field(folder, run, key, optional) for run in runs]
    values = [pick(v) if pick else v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def error(acc):
    """Test error % from accuracy %."""
    return None if acc is None else 100.0 - acc


def number(value, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def pairs(ours, paper) -> list[str]:
    """Our values interleaved with the paper's: [ours_1, paper_1, ours_2, paper_2, ...]."""
    paper = paper or (MISSING,) * len(ours)
    return [cell for pair in zip(ours, paper) for cell in pair]


def stats(values: list) -> dict:
    """Seeds' values (None where a run is missing) with the mean and the sample standard deviation of
    those found."""
    found = [v for v in values if v is not None]
    return {"values": values, "n": len(found), "mean": statistics.fmean(found) if found else None,
            "std": statistics.stdev(found) if len(found) > 1 else None}


def cell(figures: dict | None, digits: int = 2, signed: bool = False, seeds: int = 0) -> str:
    """"mean ± std", with "(n=2)" where fewer than ``seeds`` runs are found."""
    if not figures or figures["mean"] is None:
        return MISSING
    text = f"{figures['mean']:{'+' if signed else ''}.{digits}f}"
    if figures["std"] is not None:
        text += f" ± {figures['std']:.{digits}f}"
    return text + (f" (n={figures['n']})" if figures["n"] < seeds else "")


def difference(a: dict, b: dict, metric: str):
    """a[metric] - b[metric], None where either is missing: one seed's effect."""
    return None if a.get(metric) is None or b.get(metric) is None else a[metric] - b[metric]
