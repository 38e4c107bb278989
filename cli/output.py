"""What the scripts print: progress bars and per-epoch tables, on rank 0 only."""
from __future__ import annotations

import os
import sys

from tabulate import tabulate
from tqdm import tqdm


def is_main() -> bool:
    """Whether this process prints: the only one, or torchrun's rank 0."""
    return os.environ.get("RANK", "0") == "0"


LOG_SECONDS = 60  # where stderr is a file (a SLURM job's log): a bar's line at most this often


class _Lines:
    """tqdm's redraws (a carriage return, then the bar) as lines of a log, blank ones left out."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        for part in text.split("\r"):
            if part.strip():
                self.stream.write(part.strip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable, desc: str, total: int | None = None, initial: int = 0):
    """A progress bar on stderr that disappears when done (rank 0 only). Where stderr is not a
    terminal (a log file), a line every ``LOG_SECONDS`` instead, and none for a bar that ends
    sooner (an epoch's table row says it all): no carriage-return redraws flooding the log.
    ``initial``: the items done before (a run that continues)."""
    if not is_main():
        return iterable
    options = {}
    if not sys.stderr.isatty():
        options = {"file": _Lines(sys.stderr), "mininterval": LOG_SECONDS, "delay": LOG_SECONDS}
    return tqdm(iterable, desc=desc, total=total, initial=initial, leave=False, dynamic_ncols=True,
                **{"file": sys.stderr, **options})


class Table:
    """Prints one aligned row per call, with the header above the first (every 40 rows again)."""

    def __init__(self, columns: list[str], floatfmt: str = "9.4f"):
        self.columns, self.floatfmt, self.rows = columns, floatfmt, 0

    def print(self, row: dict) -> None:
        if not is_main():
            return
        values = [[row.get(c) for c in self.columns]]
        text = tabulate(values, self.columns, tablefmt="simple", floatfmt=self.floatfmt)
        lines = text.split("\n")
        print("\n".join(lines if self.rows % 40 == 0 else lines[2:]), flush=True)
        self.rows += 1
