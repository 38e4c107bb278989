"""A run's folder: its records, continuing and resuming it, and the signals that stop it.

- ``Run``: started again with the same command, a run continues from its latest complete
  checkpoint (``last.pt``, rewritten after every epoch, or a kept ``checkpoint-<epoch>.pt``);
  a finished run is left as it is; another command in the same folder is an error that names
  the flags that differ, unless ``--restart`` asks to start over.
- The files every run writes there (command.sh, args.json, metrics.csv, summary.json written
  last) are ``runtime.records``'; so is points.pt, where a run that evaluates points one after
  the other (``Run.resume_points``, ``Run.point_done``) keeps those it has.
- Signals (``runtime.signals``, caught from the script's start): SIGTERM and SIGUSR1 (a
  scheduler's preemption and time-limit warnings) make a training run finish its current step,
  write ``last.pt`` and exit with status 75, EX_TEMPFAIL: "start me again"; a point by point
  run finishes its current point. While a run starts, with nothing computed, either exits 75
  at once.

Checkpoint files themselves are ``runtime.checkpoints``'; the processes, ``runtime.processes``.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Callable

import torch

from runtime.checkpoints import (LAST, latest_checkpoint, load_checkpoint, progress_of, rng_state, save_checkpoint,
                                 set_rng_state)
from runtime.errors import UserError
from runtime.processes import Processes
from runtime.records import POINTS, RunRecord, load_points, remove_run_files, save_points
from runtime.signals import EXIT_REQUEUE, STOP

# Flags that say how and where a run executes, not what it computes: they may change
# between a run and its continuation.
OPERATIONAL = {"dir", "device", "num_workers", "data_path", "compile", "resume", "restart", "dist_backend",
               "amp_dtype", "channels_last"}


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

    ``saves``: whether the run saves where it stands (a training run's checkpoints, a point by
    point run's points), so that a stop signal stops it at the next point where it can save and
    it continues when started again (until it computes, ``set_payload`` or ``resume_points``, a
    signal ends it at once with status 75: nothing would be lost); or has nothing to save (an
    evaluation that is quick to repeat), so that SIGTERM ends it at once, for a requeue that
    starts it over, and SIGUSR1 (the time limit's warning) is ignored. See ``runtime.signals``.
    """

    def __init__(self, args, procs: Processes | None = None, *, script: str, resume_from: str | None = None,
                 may_differ=(), saves: bool = True):
        self.args, self.procs = args, procs or Processes()
        args.script = script
        self.directory = args.dir
        self.checkpoint_path: str | None = None
        self.signals = STOP  # the process's, installed as the script started (here, if it was not)
        self._release_signals = not STOP.installed  # a test runner's or notebook's: theirs again at the end
        STOP.install()
        # a signal is remembered only while a run computes (before, it exits at once): one remembered
        # now was an earlier run's, in this process (a notebook, a test runner), and was acted on
        STOP.reset()
        self._payload: Callable[[], dict] | None = None
        self.record: RunRecord | None = None
        self.state, self.continues_folder = "new", False
        self.prefix = ""
        try:
            self._open_folder(script, resume_from, may_differ)
        except BaseException:
            self._release()
            raise
        if self.state == "finished":
            self._release()
            return
        STOP.expect(saves)

    def _open_folder(self, script: str, resume_from: str | None, may_differ) -> None:
        """Where the run stands: ``state``, ``prefix``, ``checkpoint_path``, ``continues_folder``."""
        args = self.args
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
    def open_records(self, resume_epoch: int | None = None, rows: list[dict] | None = None,
                     progress_key: str = "epoch") -> None:
        """command.sh and args.json of a new run, or the command appended to the command.sh of the
        run this folder holds (its args.json is kept); metrics.csv without rows after ``resume_epoch``
        (rows counted by their ``progress_key`` column), or of exactly ``rows``; a summary.json that
        more epochs make stale is removed."""
        if self.directory is None or not self.procs.is_main:
            return
        if getattr(self.args, "restart", False):
            remove_run_files(self.directory, self.prefix, self.args.script)
        if os.path.isfile(self.file("summary.json")):
            os.remove(self.file("summary.json"))
        self.record = RunRecord(self.directory, vars(self.args), resume_epoch=resume_epoch,
                                append_command=self.continues_folder, prefix=self.prefix, rows=rows,
                                progress_key=progress_key)

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
        as of now; the run adds where it stands and the random states, and writes it. Nothing is
        trained yet: until here a stop signal exits at once, from here on it waits for the next step."""
        self._payload = payload
        self._computing()

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

    def _computing(self) -> None:
        """The run begins to compute (``set_payload``, ``resume_points``): a stop signal from now on
        waits for the next step or point; till now one exited at once (``runtime.signals``). All
        processes agree that none came meanwhile (one that reached another process exits it here)."""
        self.signals.computing()
        if self.procs.any(self.signals.received is not None):
            self._exit(f"stopped by {self.signals.received or 'a signal on another process'} while starting, "
                       "before anything was computed: start the same command again to continue")

    def _exit(self, message: str) -> None:
        if self.procs.is_main:
            print(message, file=sys.stderr, flush=True)
        self.procs.close()
        self._release()
        sys.exit(EXIT_REQUEUE)

    def requeue(self, epoch: int, step: int = 0, partial: list[float] | None = None) -> None:
        """Save where the run stands and exit with EX_TEMPFAIL: the same command continues it."""
        self.save(epoch, keep=False, step=step, partial=partial)
        where = f"epoch {epoch + 1}, step {step}" if step else f"the end of epoch {epoch}"
        self._exit(f"stopped by {self.signals.received or 'a signal on another process'} at {where}; "
                   f"{self.file(LAST)} written: start the same command again to continue")

    def end_epoch(self, epoch: int, keep: bool) -> None:
        """After epoch ``epoch`` (from 1) and its evaluation: the rolling or kept checkpoint, then
        exit for a requeue if a stop signal came meanwhile."""
        self.save(epoch, keep=keep)
        if self.stop_requested():
            self.requeue(epoch)

    # ------------------------------------------------------------------ point by point runs
    def resume_points(self) -> tuple[list[dict], dict]:
        """For a run that evaluates points one after the other (eval_curve.py, plane.py), instead of
        ``open_records``: the rows of the points it evaluated before it was stopped or killed, and
        the state saved with the last of them (``point_done``; {} for a new run); metrics.csv holds
        those rows and no others. The run goes on with the next point: a point's figures must not
        depend on the points before it but through that state (number its random draws by the
        point's index, as ``curves.evaluate_point`` does), for the result to be an uninterrupted
        run's. Until here a stop signal exits at once; from here on it waits for ``point_done``."""
        rows, state = [], {}
        progress = load_points(self.file(POINTS)) if self.directory is not None else None
        if progress is not None and not getattr(self.args, "restart", False):
            differ = differing_flags(progress["args"], vars(self.args))
            if differ:
                raise UserError(f"{self.file(POINTS)} holds the points of another command ({'; '.join(differ)}): "
                                "use another --dir, or --restart to start this one over")
            rows, state = progress["rows"], progress["state"]
        self.open_records(rows=rows)
        self._points = list(rows)
        self._computing()
        return list(rows), state

    def point_done(self, row: dict, state: dict | None = None) -> None:
        """One more point evaluated: its row in metrics.csv, and the rows so far with ``state`` (what the
        points after it need: a running sum, ...; tensors and plain values) in points.pt, written
        atomically (a run killed at any moment continues from the last point written); then a stop
        signal exits 75, and the same command started again continues with the next point."""
        self._points.append(row)
        self.log(row)
        if self.directory is not None and self.procs.is_main:
            save_points(self.file(POINTS), {"script": self.args.script, "args": vars(self.args),
                                            "rows": self._points, "state": state or {}})
        if self.stop_requested():
            self._exit(f"stopped by {self.signals.received or 'a signal on another process'} after point "
                       f"{len(self._points)}; {self.file(POINTS)} written: start the same command again to continue")

    def finish(self, figures: dict) -> None:
        """summary.json, written last: from now on the run is finished (a point by point run's
        points.pt goes: the records hold it all)."""
        if self.record is not None:
            self.record.summary(figures)
            if os.path.exists(self.file(POINTS)):
                os.remove(self.file(POINTS))
        self._release()

    def _release(self) -> None:
        """The signal handlers of a process that is not one of the scripts (a test runner, a notebook)
        back as they were: ours were installed for the run's time only."""
        if self._release_signals:
            self.signals.uninstall()
            self._release_signals = False
