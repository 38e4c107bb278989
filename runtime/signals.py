"""The stop signals of a run: SIGTERM and SIGUSR1, caught from the first milliseconds of a script.

A scheduler asks a run to stop with SIGTERM (preemption, a cancel, ``scontrol requeue``) and warns
of its time limit with SIGUSR1 (``sbatch --signal``). Either may come at any moment, also while the
script still imports torch, reads its data or builds its model. ``runtime`` installs the one
process-wide ``STOP`` as its first statement, before it imports torch, when the process runs one
of the scripts at the top of the repository (a test runner or a user's notebook that imports the
library keeps its own handlers; ``Run`` installs it there for the run's time). Then:

- while the run starts (imports, its folder, data, model: nothing computed yet), either signal
  ends it at once with status 75 (EX_TEMPFAIL, "start the same command again"): nothing would
  be lost, and the requeued command starts where this one stood;
- a run that saves where it stands (``expect(saves=True)``: the training scripts' checkpoints, the
  point by point evaluations' points), once it computes (``computing``: ``Run.set_payload``,
  ``Run.resume_points``): the signal is remembered (``received``), and the run stops at the next
  point where it can save without losing anything (after the current step or point), saves and
  exits 75 (``runtime.Run``);
- a run with nothing to save (``expect(saves=False)``: an evaluation that is quick to repeat):
  SIGTERM ends it at once with status 75 (the same command starts it over), SIGUSR1 is ignored,
  so that it uses its last minutes.

A second SIGTERM while a stop is pending ends the process at once, killed by SIGTERM (status
143), as one expects of a second SIGTERM. One that comes within ``SAME_REQUEST_SECONDS`` of the
first is the same request delivered twice: SLURM ending a job signals every process of it, and the
job script (scripts/slurm_job.sh) passes its own SIGTERM on too.

Standard library only: it is imported before torch.
"""
from __future__ import annotations

import os
import signal
import sys
import time

EXIT_REQUEUE = 75  # EX_TEMPFAIL from sysexits.h: a temporary failure, run the same command again
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
SAME_REQUEST_SECONDS = 1.0
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where the scripts are


class StopSignals:
    """Catches SIGTERM and SIGUSR1; ``received``: the first one's name, once remembered. See the
    module's docstring for what follows, by ``mode``: "starting", "saving" or "nothing to save"."""

    def __init__(self):
        self.received: str | None = None
        self.mode = "starting"
        self._term_at: float | None = None
        self._previous: dict = {}

    @property
    def installed(self) -> bool:
        """Whether our handler is the one in place (a test runner may have put its own back)."""
        return all(signal.getsignal(sig) == self._handle for sig in SIGNALS)

    def install(self) -> None:
        if not self.installed:
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}

    def uninstall(self) -> None:
        """The handlers there were before ``install``, and nothing remembered."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        self.reset()

    def reset(self) -> None:
        self.received, self.mode, self._term_at = None, "starting", None

    def expect(self, saves: bool) -> None:
        """Say what the script is: one that saves where it stands (a signal stops it at once until it
        computes, then at the next point where it can save), or one with nothing to save."""
        self.mode = "starting" if saves else "nothing to save"

    def computing(self) -> None:
        """A run that saves begins to compute: from now on a signal is remembered, and the run saves
        at its next step or point, then exits 75."""
        self.mode = "saving"

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.mode == "starting":
            self._exit_now(f"stopped by {name} while starting, before anything was computed: exit 75; "
                           "start the same command again to continue")
        if self.mode == "nothing to save":
            if signum == signal.SIGTERM:
                self._exit_now("stopped by SIGTERM: exit 75; the same command started again runs it again")
            return  # SIGUSR1: the time limit is near, and the run has nothing to save: go on
        if signum == signal.SIGTERM:
            now = time.monotonic()
            if self._term_at is not None and now - self._term_at > SAME_REQUEST_SECONDS:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second request: die of it, at once
                os.kill(os.getpid(), signal.SIGTERM)
                return
            if self._term_at is None:
                self._term_at = now
        if self.received is None:
            self.received = name

    @staticmethod
    def _exit_now(message: str) -> None:
        # The process ends here, from whatever it was doing: os._exit, for a SystemExit raised in a
        # handler unwinds through whatever code the main thread is in, which may swallow it (seen
        # once in a start-up: the run trained on, and exited 0). Nothing is lost: nothing was
        # computed yet, or the run has nothing to save; a checkpoint or record being written is a
        # temporary file (runtime.files), and a picture half drawn is drawn again by the next start.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # the main thread was inside a write to it
                pass
        if os.environ.get("RANK", "0") == "0":
            os.write(2, message.encode() + b"\n")  # os.write, not print: the main thread may be in one
        os._exit(EXIT_REQUEUE)


STOP = StopSignals()


def runs_a_script() -> bool:
    """Whether this process runs one of the repository's top-level scripts (train.py, ...)."""
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return main is not None and os.path.dirname(os.path.realpath(main)) == os.path.realpath(_ROOT)
