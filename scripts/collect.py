"""Gather the table scripts' runs (their summary.json files) into the papers' tables, as markdown,
with the published numbers in a "paper" column beside ours; a missing run shows as "—", so the
tables can be printed at any time, before the first run as after the last.

    bash scripts/swa_table.sh data runs/tables
    python scripts/collect.py runs/tables --table swa --out runs/tables/swa.md

--table curves, fge, swa, subspaces, simplexes: the CIFAR table scripts' runs (reports/cifar_tables.py
names their folders); --table fashion: scripts/fashion_tables.sh's runs (reports/fashion.py), every
figure the mean ± standard deviation over the seeds found, each effect beside the published CIFAR
one; --table alignment: scripts/alignment_table.sh's (reports/alignment.py). With fashion or
alignment, --json FILE also writes the figures, seed by seed, as JSON.

    python scripts/collect.py runs/study --table fashion --json runs/study/fashion.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from reports import alignment, cifar_tables, fashion  # noqa: E402
from reports.summaries import RunFolderError  # noqa: E402

CIFAR_TABLES = ("curves", "fge", "swa", "subspaces", "simplexes")
RECORDS = {"fashion": fashion, "alignment": alignment}  # the tables with a JSON record


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def report(out_dir: str, table: str) -> str:
    """The markdown document: one section per table (and dataset or model). --table all adds the
    Fashion-MNIST and alignment tables where their runs are."""
    sections = cifar_tables.sections(out_dir, table) if table in CIFAR_TABLES + ("all",) else []
    if table == "fashion" or (table == "all" and os.path.isdir(os.path.join(out_dir, fashion.FOLDER))):
        sections += fashion.sections(fashion.record(out_dir))
    if table == "alignment" or (table == "all" and os.path.isdir(os.path.join(out_dir, "alignment"))):
        sections += alignment.sections(alignment.record(out_dir))
    return "\n\n".join(f"## {title}\n\n{text}" for title, text in sections) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the table scripts' output folder (it may not exist yet)")
    parser.add_argument("--table", choices=CIFAR_TABLES + tuple(RECORDS) + ("all",), default="all",
                        help="which table (all: fashion and alignment too where their runs are)")
    parser.add_argument("--out", metavar="FILE.md", help="also write the tables to this file")
    parser.add_argument("--json", metavar="FILE.json", help="with --table fashion or alignment: also write its "
                        "figures, seed by seed, with their means, standard deviations and the published effects")
    parser.error = fail  # a mistake is one error: line and exit status 2, as in the other scripts
    args = parser.parse_args(argv)
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        fail(f"{args.out_dir} is a file, not a folder (the table scripts' OUT_DIR)")
    if args.json and args.table not in RECORDS:
        fail(f"--json goes with --table {' or '.join(RECORDS)}")
    try:
        text = report(args.out_dir, args.table)
        found = RECORDS[args.table].record(args.out_dir) if args.json else None
    except RunFolderError as exc:
        fail(str(exc))
    print(text, end="")
    if args.out or args.json:
        from runtime.errors import WriteError  # torch's import, only to write files
        from runtime.files import write_atomic
    for path, content in ((args.out, text), (args.json, found and json.dumps(found, indent=2) + "\n")):
        if path:
            try:
                write_atomic(path, content)  # a failed write leaves the file that was there
            except WriteError as exc:
                fail(str(exc))


if __name__ == "__main__":
    main()
