"""A run's folder: its records, continuing and resuming it, and the signals that stop it.

- ``Run``: started again with the same command, a run continues from its latest complete
  checkpoint (``last.pt``, rewritten after every epoch, or a kept ``checkpoint-<epoch>.pt``);
  a finished run is left as it is; another command in the same folder is an error that names
  the flags that differ, unless ``--restart`` asks to start over.
- ``RunRecord``: the files every run writes there: command.sh, args.json, metrics.csv,
  summary.json (written last).
- Signals: SIGTERM and SIGUSR1 (a scheduler's preemption and time-limit warnings) make a
  training run finish its current step, write ``last.pt`` and exit with status 75,
  EX_TEMPFAIL: "start me again".

Checkpoint files themselves are ``runtime.checkpoints``'; the processes, ``runtime.processes``.
"""
from __future__ import annotations

import csv
import glob
import json
import math
import os
import shlex
import signal
import sys
from typing import Callable

import torch

from runtime.checkpoints import (LAST, latest_checkpoint, load_checkpoint, progress_of, rng_state,
                                 save_checkpoint, set_rng_state)
from runtime.errors import UserError, WriteError
from runtime.files import atomic_open, write_atomic
from runtime.processes import Processes

EXIT_REQUEUE = 75  # EX_TEMPFAIL from sysexits.h: a temporary failure, run the same command again

# Flags that say how and where a run executes, not what it computes: they may change
# between a run and its continuation.
OPERATIONAL = {"dir", "device", "num_workers", "data_path", "compile", "resume", "restart", "dist_backend",
               "amp_dtype", "channels_last"}


# --------------------------------------------------------------------------- signals

class StopSignals:
    """SIGTERM and SIGUSR1 set a flag instead of killing the process; the training loop
    looks at it after every step. A second SIGTERM while stopping is left to the default."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.received = None
        self._previous = {}

    def install(self) -> None:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name


# --------------------------------------------------------------------------- a run's folder

def continues_in_place(args, parser, argv: list[str]) -> bool:
    """Whether --resume continues its checkpoint's run in that run's folder (no other --dir given)."""
    if "dir" not in given_flags(parser, argv) or args.dir is None:
        return True
    folder = os.path.dirname(os.path.abspath(args.resume)) if os.path.isfile(args.resume) else args.resume
    return os.path.abspath(args.dir) == os.path.abspath(folder)


def given_flags(parser, argv: list[str]) -> set[str]:
    """The destinations of the flags written on the command line (not left to their defaults)."""
    import argparse

    saved = [action.default for action in parser._actions]
    try:
        for action in parser._actions:
            action.default = argparse.SUPPRESS
        namespace, _ = parser.parse_known_args(argv)
        return set(vars(namespace))
    finally:
        for action, default in zip(parser._actions, saved):
            action.default = default


def _comparable(value):
    return json.loads(json.dumps(value, default=str))


def differing_flags(stored: dict, current: dict) -> list[str]:
    """The run-defining flags whose values differ, as ``--flag=stored -> current``."""
    out = []
    for key in sorted(set(stored) & set(current) - OPERATIONAL):
        a, b = _comparable(stored[key]), _comparable(current[key])
        if a != b:
            out.append(f"--{key}={a} -> {b}")
    return out


class Run:
    """A run's folder, the records every run writes there, and where the run stands.

    ``state`` is "new" (nothing to continue), "continue" (``checkpoint_path`` is the latest
    complete checkpoint to continue from) or "finished" (summary.json is there and nothing
    asks for more epochs: nothing to do). ``resume_from``: the checkpoint named by
    ``--resume``, whose run this one continues (the folder's own latest checkpoint wins if
    it is further on: the same --resume command started again continues, it does not go
    back). ``may_differ``: flags the user gave with --resume, which may change the run's
    settings (--epochs extends it). Only rank 0 writes; the others keep the same state.

    ``script`` names the run's kind ("train", "fge", ...; recorded in args.json). A folder
    may hold runs of two scripts, as in the FGE paper's commands, which start fge.py in the
    folder of the train.py run it starts from: the second run's files then begin with its
    script's name (``fge-metrics.csv``, ``fge-summary.json``, ``fge-last.pt``, ...), and the
    first run's stay as they are.
    """

    def __init__(self, args, procs: Processes | None = None, *, script: str, resume_from: str | None = None,
                 may_differ=()):
        self.args, self.procs = args, procs or Processes()
        args.script = script
        self.directory = args.dir
        self.checkpoint_path: str | None = None
        self.signals = StopSignals()
        self._payload: Callable[[], dict] | None = None
        self.record: RunRecord | None = None
        self.state, self.continues_folder = "new", False
        self.prefix = ""
        # SIGUSR1 warns of a time limit: a run with nothing to checkpoint (an evaluation) uses its
        # last minutes; a training run's handler (set_payload) checkpoints instead
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        if self.directory is not None and os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise UserError(f"--dir={self.directory} is a file, not a folder")
        found = stored = None
        if self.directory is not None and os.path.isdir(self.directory):
            self.prefix = self._prefix_for(script)
            if not getattr(args, "restart", False):
                found = latest_checkpoint(self.directory, self.prefix)
                stored = self._stored_args(found)
        if stored is not None:
            differ = differing_flags({k: v for k, v in stored.items() if k not in may_differ}, vars(args))
            if differ:
                raise UserError(f"{self.directory} holds a run of another command ({'; '.join(differ)}): "
                                "use another --dir, or --restart to start this one over")
            self.continues_folder = True
            more_epochs = "epochs" in stored and getattr(args, "epochs", None) != stored["epochs"]
            if os.path.isfile(self.file("summary.json")) and not more_epochs:
                self.state = "finished"
                return
        candidates = [p for p in (found, resume_from) if p is not None]
        if candidates:
            self.state = "continue"
            self.checkpoint_path = max(candidates, key=lambda p: progress_of(p) or (-1, -1))

    def _prefix_for(self, script: str) -> str:
        """"" if the folder is this script's (or empty); "<script>-" if it holds another script's
        run, or checkpoints of unknown origin (which are left alone)."""
        if os.path.isfile(os.path.join(self.directory, f"{script}-args.json")):
            return f"{script}-"
        owner = self._read_json(os.path.join(self.directory, "args.json"))
        if owner is None:
            found = latest_checkpoint(self.directory)
            if found is None:
                return ""
            owner = self._stored_args(found)
        return "" if owner.get("script") == script else f"{script}-"

    def file(self, name: str) -> str:
        """A record of this run in its folder (``name`` with the run's prefix)."""
        return os.path.join(self.directory, self.prefix + name)

    def _stored_args(self, checkpoint: str | None) -> dict | None:
        """The settings of the run in the folder: its latest checkpoint's, else args.json's."""
        if checkpoint is not None:
            try:
                return dict(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["args"])
            except Exception as exc:
                raise UserError(f"cannot read checkpoint {checkpoint}: {type(exc).__name__}") from exc
        return self._read_json(self.file("args.json"))

    @staticmethod
    def _read_json(path: str) -> dict | None:
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path}: {exc}") from exc

    # ------------------------------------------------------------------ records
    def open_records(self, resume_epoch: int | None = None, keep_rows: int | None = None,
                     progress_key: str = "epoch") -> None:
        """command.sh and args.json of a new run, or the command appended to the command.sh of the
        run this folder holds (its args.json is kept); metrics.csv without rows after ``resume_epoch``
        (rows counted by their ``progress_key`` column), or only its first ``keep_rows`` rows (a run
        of points that continues after them); a summary.json that more epochs make stale is removed."""
        if self.directory is None or not self.procs.is_main:
            return
        if getattr(self.args, "restart", False):
            remove_run_files(self.directory, self.prefix, self.args.script)
        if os.path.isfile(self.file("summary.json")):
            os.remove(self.file("summary.json"))
        self.record = RunRecord(self.directory, vars(self.args), resume_epoch=resume_epoch, keep_rows=keep_rows,
                                append_command=self.continues_folder, prefix=self.prefix, progress_key=progress_key)

    def log(self, row: dict) -> None:
        if self.record is not None:
            self.record.log(row)

    def path(self, name: str, prefixed: bool = True) -> str | None:
        """A file of the run's folder for rank 0 to write (None elsewhere, or without --dir): a
        record or picture (``prefixed``), or a file named for itself such as ``fge-161.pt``."""
        if self.directory is None or not self.procs.is_main:
            return None
        return self.file(name) if prefixed else os.path.join(self.directory, name)

    # ------------------------------------------------------------------ checkpoints
    def load(self) -> dict | None:
        """The checkpoint to continue from (state "continue"), or None."""
        if self.checkpoint_path is None:
            return None
        return load_checkpoint(self.checkpoint_path)

    def set_payload(self, payload: Callable[[], dict]) -> None:
        """``payload()`` returns the script's checkpoint (``runtime.model_checkpoint`` and friends)
        as of now; the run adds where it stands and the random states, and writes it."""
        self._payload = payload
        self.signals.install()

    def save(self, epoch: int, *, keep: bool, step: int = 0, partial: list[float] | None = None) -> None:
        """Write the state after ``epoch`` epochs (and ``step`` batches of the next): as
        ``checkpoint-<epoch>.pt`` if ``keep``, else as the rolling ``last.pt``."""
        rng = self.procs.gather_objects(rng_state())  # every process's dropout stream
        if not self.procs.is_main or self.directory is None:
            return
        state = self._payload()
        state.update(epoch=epoch, step=step, partial=partial, rng_states=rng)
        if keep:
            save_checkpoint(self.file(f"checkpoint-{epoch}.pt"), state)
            if os.path.exists(self.file(LAST)):  # the kept checkpoint is now the latest
                os.remove(self.file(LAST))
        else:
            save_checkpoint(self.file(LAST), state)

    def restore_random_state(self, ckpt: dict) -> None:
        """This process's random streams from ``ckpt`` (rank r takes the r-th of the processes that wrote it)."""
        states = ckpt.get("rng_states") or [ckpt["rng_state"]]
        set_rng_state(states[self.procs.rank % len(states)])

    def stop_requested(self) -> bool:
        """Whether a stop signal reached any process (all processes agree on the answer)."""
        return self.procs.any(self.signals.received is not None)

    def requeue(self, epoch: int, step: int = 0, partial: list[float] | None = None) -> None:
        """Save where the run stands and exit with EX_TEMPFAIL: the same command continues it."""
        self.save(epoch, keep=False, step=step, partial=partial)
        if self.procs.is_main:
            where = f"epoch {epoch + 1}, step {step}" if step else f"the end of epoch {epoch}"
            print(f"stopped by {self.signals.received or 'a signal'} at {where}; {self.file(LAST)} written: "
                  "start the same command again to continue", file=sys.stderr, flush=True)
        self.procs.close()
        sys.exit(EXIT_REQUEUE)

    def end_epoch(self, epoch: int, keep: bool) -> None:
        """After epoch ``epoch`` (from 1) and its evaluation: the rolling or kept checkpoint, then
        exit for a requeue if a stop signal came meanwhile."""
        self.save(epoch, keep=keep)
        if self.stop_requested():
            self.requeue(epoch)

    def finish(self, figures: dict) -> None:
        """summary.json, written last: from now on the run is finished."""
        if self.record is not None:
            self.record.summary(figures)
        self.signals.uninstall()


class RunRecord:
    """The files every run writes in its folder: command.sh, args.json, metrics.csv, summary.json.

    A new run writes command.sh and args.json; a continued one (``append_command``) adds
    its command line to command.sh and keeps the args.json of the run it continues.
    ``resume_epoch``: when a run resumes from the end of that epoch, rows of metrics.csv
    after it (written before the interruption) are dropped, and so is a row cut short by
    a kill, so that the file ends up as an uninterrupted run's. ``keep_rows``: a run of
    points (rays.py) continues after the first ``keep_rows`` complete rows; the rest go.
    """

    def __init__(self, directory: str, args: dict, resume_epoch: int | None = None,
                 append_command: bool = False, prefix: str = "", keep_rows: int | None = None,
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
        rows = []
        if (resume_epoch is not None or keep_rows) and os.path.isfile(self.metrics_path):
            with open(self.metrics_path, newline="") as f:
                reader = csv.DictReader(f)
                rows = [r for r in reader if None not in r.values() and None not in r
                        and (resume_epoch is None or _epoch_of(r, progress_key) <= resume_epoch)]
            rows = rows if keep_rows is None else rows[:keep_rows]
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


RUN_FILES = ("checkpoint-*.pt", LAST, "metrics.csv", "summary.json", "*.png", "*.npz", "curve.csv", "swa.pt",
             "aligned.pt", "swag.pt")


def remove_run_files(directory: str, prefix: str = "", script: str = "") -> None:
    """--restart: the files an earlier run of ours wrote there (checkpoints, records, pictures;
    fge.py's snapshots too)."""
    patterns = [prefix + p for p in RUN_FILES] + (["fge-*.pt"] if script == "fge" else [])
    for pattern in patterns:
        for path in glob.glob(os.path.join(directory, pattern)):
            os.remove(path)


