"""What the scripts print: progress bars and per-epoch tables, on rank 0 only."""
from __future__ import annotations

import os
import sys

from tabulate import tabulate
from tqdm import tqdm


def is_main() -> bool:
    """Whether this process prints: the only one, or torchrun's rank 0."""
    return os.environ.get("RANK", "0") == "0"


def progress(iterable, desc: str, total: int | None = None):
    """A progress bar on stderr that disappears when done (rank 0 only)."""
    if not is_main():
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr)


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
