"""The demo's closing tables, its record and pictures, from the runs scripts/demo.sh wrote.

    python scripts/demo_report.py runs/demo [--seconds S | --started UNIX_TIME] [--jobs N]
    python scripts/demo_report.py runs/demo --show       (the tables of the report made before; writes nothing)

Writes <dir>/summary.json (the tables' figures), <dir>/figures.json (the record: the figures, the
arrays behind the pictures, the machine; ``make readme`` keeps it as docs/demo.json) and the
pictures curve_vs_segment.png, fge_ensemble.png and noisy_labels.png, and prints the two tables.
"""
from __future__ import annotations

import json
import os
import sys
import time

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402
import runtime  # noqa: E402
from reports import demo  # noqa: E402


def main(argv=None) -> None:
    parser = cli.ArgumentParser(description="The demo's table, figures file and pictures.")
    parser.add_argument("folder", help="the demo's output folder (runs/demo)")
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument("--seconds", type=float, default=None, help="how long the demo took, to record")
    timing.add_argument("--started", type=float, default=None, metavar="UNIX_TIME",
                        help="when the demo started (date +%%s): the time from then to now is recorded "
                        "(what demo.sh passes, one run after another or with --jobs)")
    parser.add_argument("--jobs", type=int, default=1, help="how many runs ran at a time (demo.sh --jobs), to record")
    timing.add_argument("--show", action="store_true", help="print the tables of the report made before "
                        "(<folder>/figures.json), write nothing")
    args = parser.parse_args(argv)
    if args.show:
        path = os.path.join(args.folder, "figures.json")
        if not os.path.isfile(path):
            raise runtime.UserError(f"{path}: no report yet (run demo_report.py {args.folder} first)")
        with open(path) as f:
            show(json.load(f))
        return
    record = demo.collect(args.folder)
    record["seconds"] = time.time() - args.started if args.started is not None else args.seconds
    record["machine"]["jobs"] = args.jobs  # its threads are then each run's (with_gpu.sh shares the cores out)
    show(record)
    runtime.write_atomic(os.path.join(args.folder, "summary.json"), json.dumps(record["figures"], indent=2) + "\n")
    runtime.write_atomic(os.path.join(args.folder, "figures.json"), json.dumps(record))
    demo.draw(record, args.folder)


def show(record: dict) -> None:
    """The demo's two tables and its barriers."""
    print(tabulate(demo.table(record), ["path (ConvFC on DIGITS)", "test error %", "test NLL"], floatfmt=".3f"))
    f = record["figures"]
    print(f"\nbarrier above the worse endpoint: segment {f['segment_barrier']:.2f} points, after weight "
          f"matching {f['aligned_barrier']:.2f} points, curve {f['curve_barrier']:.2f} points\n")
    print(tabulate(demo.noisy_table(record), [f"method (ResNet20 on DIGITS, {demo.noise_label(record)})",
                                              "test error %", "test NLL", "test ECE"], floatfmt=".3f"))


if __name__ == "__main__":
    cli.run(main)
