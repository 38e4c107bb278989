"""The files every run writes in its folder (command.sh, args.json, metrics.csv, summary.json), a
point by point run's points so far (points.pt), and the files ``--restart`` removes.
"""
from __future__ import annotations

import csv
import glob
import json
import math
import os
import shlex
import sys

import torch

from runtime.checkpoints import LAST, save_checkpoint
from runtime.errors import UserError, WriteError
from runtime.files import atomic_open, write_atomic


class RunRecord:
    """The files every run writes in its folder: command.sh, args.json, metrics.csv, summary.json.

    A new run writes command.sh and args.json; a continued one (``append_command``) adds
    its command line to command.sh and keeps the args.json of the run it continues.
    ``resume_epoch``: when a run resumes from the end of that epoch, rows of metrics.csv
    after it (written before the interruption) are dropped, and so is a row cut short by
    a kill, so that the file ends up as an uninterrupted run's (rows counted by their
    ``progress_key`` column: "epoch", or swag.py's "sample"). ``rows``: metrics.csv starts
    with these (a point by point run's points so far).
    """

    def __init__(self, directory: str, args: dict, resume_epoch: int | None = None,
                 append_command: bool = False, prefix: str = "", rows: list[dict] | None = None,
                 progress_key: str = "epoch"):
        self.directory, self.prefix = directory, prefix
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise WriteError(f"cannot create {directory}: {exc.strerror or exc}") from exc
        self.metrics_path = os.path.join(directory, prefix + "metrics.csv")
        command = shlex.join([os.path.basename(sys.executable)] + sys.argv) + "\n"
        command_path = os.path.join(directory, prefix + "command.sh")
        if append_command and os.path.isfile(command_path):
            with open(command_path) as f:
                command = f.read() + command
        else:
            command = "#!/bin/sh\n" + command
            write_atomic(os.path.join(directory, prefix + "args.json"), json.dumps(args, indent=2, default=str) + "\n")
        write_atomic(command_path, command)
        self.fields: list[str] = []
        rows = list(rows or [])
        if resume_epoch is not None and os.path.isfile(self.metrics_path):
            with open(self.metrics_path, newline="") as f:
                reader = csv.DictReader(f)
                rows = [r for r in reader if None not in r.values() and None not in r
                        and _epoch_of(r, progress_key) <= resume_epoch]
        self._rewrite(rows)

    def log(self, row: dict) -> None:
        """Add one row (an epoch, a curve point) to metrics.csv: appended, unless it brings new columns."""
        if not self.fields or any(k not in self.fields for k in row):
            self._rewrite(self._rows() + [row])
            return
        try:
            with open(self.metrics_path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields).writerow(row)
        except OSError as exc:
            raise WriteError(f"cannot write {self.metrics_path}: {exc.strerror or exc}") from exc

    def _rows(self) -> list[dict]:
        if not os.path.isfile(self.metrics_path):
            return []
        with open(self.metrics_path, newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows: list[dict]) -> None:
        self.fields = list(dict.fromkeys(k for row in rows for k in row))
        if not rows:
            if os.path.exists(self.metrics_path):
                os.remove(self.metrics_path)
            return
        with atomic_open(self.metrics_path) as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows(rows)

    def summary(self, figures: dict) -> None:
        """Write summary.json, the run's final figures; done last."""
        write_atomic(os.path.join(self.directory, self.prefix + "summary.json"), json.dumps(figures, indent=2) + "\n")


def _epoch_of(row: dict, key: str = "epoch") -> float:
    try:
        return float(row.get(key, 0))
    except ValueError:
        return math.inf  # a row cut short: dropped


POINTS = "points.pt"  # a point by point run's points so far (Run.point_done)


def save_points(path: str, progress: dict) -> None:
    save_checkpoint(path, progress)


def load_points(path: str) -> dict | None:
    """points.pt's rows, state and args; None if there is none."""
    if not os.path.isfile(path):
        return None
    try:
        progress = torch.load(path, map_location="cpu", weights_only=True)
        return {"args": dict(progress["args"]), "rows": list(progress["rows"]), "state": dict(progress["state"])}
    except Exception as exc:  # killed while written cannot be (atomic): another file, damaged
        raise UserError(f"cannot read {path}: {type(exc).__name__}; --restart starts the run over") from exc


RUN_FILES = ("checkpoint-*.pt", LAST, POINTS, "metrics.csv", "summary.json", "*.png", "*.npz", "curve.csv", "swa.pt",
             "aligned.pt", "swag.pt")


def remove_run_files(directory: str, prefix: str = "", script: str = "") -> None:
    """--restart: the files an earlier run of ours wrote there (checkpoints, records, pictures;
    fge.py's snapshots too)."""
    patterns = [prefix + p for p in RUN_FILES] + (["fge-*.pt"] if script == "fge" else [])
    for pattern in patterns:
        for path in glob.glob(os.path.join(directory, pattern)):
            os.remove(path)


