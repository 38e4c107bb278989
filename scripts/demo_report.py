"""The demo's closing tables, its record and pictures, from the runs scripts/demo.sh wrote.

    python scripts/demo_report.py runs/demo [--seconds S]

Writes <dir>/summary.json (the tables' figures), <dir>/figures.json (the record: the figures, the
arrays behind the pictures, the machine; ``make readme`` keeps it as docs/demo.json) and the
pictures curve_vs_segment.png, fge_ensemble.png and noisy_labels.png, and prints the two tables.
"""
from __future__ import annotations

import json
import os
import sys

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402
import runtime  # noqa: E402
from reports import demo  # noqa: E402


def main(argv=None) -> None:
    parser = cli.ArgumentParser(description="The demo's table, figures file and pictures.")
    parser.add_argument("folder", help="the demo's output folder (runs/demo)")
    parser.add_argument("--seconds", type=float, default=None, help="how long the demo took, to record")
    args = parser.parse_args(argv)
    record = demo.collect(args.folder)
    record["seconds"] = args.seconds
    print(tabulate(demo.table(record), ["path (ConvFC on DIGITS)", "test error %", "test NLL"], floatfmt=".3f"))
    f = record["figures"]
    print(f"\nbarrier above the worse endpoint: segment {f['segment_barrier']:.2f} points, after weight "
          f"matching {f['aligned_barrier']:.2f} points, curve {f['curve_barrier']:.2f} points\n")
    print(tabulate(demo.noisy_table(record), [f"method (ResNet20 on DIGITS, {demo.noise_label(record)})",
                                              "test error %", "test NLL", "test ECE"], floatfmt=".3f"))
    runtime.write_atomic(os.path.join(args.folder, "summary.json"), json.dumps(f, indent=2) + "\n")
    runtime.write_atomic(os.path.join(args.folder, "figures.json"), json.dumps(record))
    demo.draw(record, args.folder)


if __name__ == "__main__":
    cli.run(main)
