"""The stop signals of a run: SIGTERM and SIGUSR1, remembered from the first milliseconds of a script.

A scheduler asks a run to stop with SIGTERM (preemption, a cancel, ``scontrol requeue``) and warns
of its time limit with SIGUSR1 (``sbatch --signal``). Either may come at any moment, also while the
script still imports torch, reads its data or builds its model. ``runtime`` installs the one
process-wide ``STOP`` as its first statement, before it imports torch, when the process runs one
of the scripts at the top of the repository (a test runner or a user's notebook that imports the
library keeps its own handlers; ``Run`` installs it there for the run's time). The handler only
remembers the signal; what a remembered signal means is the script's to say (``expect``):

- a run that saves where it stands (``saves=True``: the training scripts' checkpoints, the point
  by point evaluations' points): it stops at the next point where it can save without losing
  anything (after the current step or point: ``runtime.Run``), and exits with status 75
  (EX_TEMPFAIL, "start the same command again"); a signal that came before anything new was
  computed (during start-up) exits 75 at once, there being nothing to save.
- a run with nothing to save (``saves=False``: an evaluation that is quick to repeat): from then
  on SIGTERM ends it at once with status 75 (the same command starts it over), and SIGUSR1 is
  ignored, so that it uses its last minutes; a SIGTERM of its start-up ends it as it expects.

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
    """Remembers SIGTERM and SIGUSR1 (``received``: the first one's name) instead of dying of them;
    see the module's docstring for what follows."""

    def __init__(self):
        self.received: str | None = None
        self.saves = True  # until the script says otherwise, a signal is remembered
        self._term_at: float | None = None
        self._previous: dict = {}

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self) -> None:
        if self._previous:
            return
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        """The handlers there were before ``install``, and nothing remembered."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        self.reset()

    def reset(self) -> None:
        self.received, self.saves, self._term_at = None, True, None

    def expect(self, saves: bool) -> None:
        """Say what the script is: one that saves where it stands (a stop waits for the next point
        where it can save), or one with nothing to save (SIGTERM ends it at once, SIGUSR1 is
        ignored). For the latter a SIGTERM of the start-up ends it now; a SIGUSR1 is forgotten."""
        self.saves = saves
        if saves:
            return
        if self._term_at is not None:
            self._exit_now()
        self.received = None

    def _handle(self, signum, frame) -> None:
        if not self.saves:
            if signum == signal.SIGTERM:
                self._exit_now()
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
            self.received = signal.Signals(signum).name

    def _exit_now(self) -> None:
        # os.write, not print: a handler may run while the main thread is inside a print
        if os.environ.get("RANK", "0") == "0":
            os.write(2, b"stopped by SIGTERM: exit 75; the same command started again runs it again\n")
        raise SystemExit(EXIT_REQUEUE)


STOP = StopSignals()


def runs_a_script() -> bool:
    """Whether this process runs one of the repository's top-level scripts (train.py, ...)."""
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return main is not None and os.path.dirname(os.path.realpath(main)) == os.path.realpath(_ROOT)
