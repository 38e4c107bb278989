"""The Fashion-MNIST study's page and the README's headline figures, from the study's record
docs/fashion.json (maintainers), as scripts/readme.py does for the demo.

    python scripts/study_docs.py --from runs/study   # record the study's runs as docs/fashion.json first
    python scripts/study_docs.py                     # docs/fashion.md and README.md from docs/fashion.json

The runs are those of scripts/fashion_tables.sh and scripts/alignment_table.sh under the folder given;
docs/fashion.md and README.md hold each generated part between ``<!-- generated: fashion-NAME -->``
and ``<!-- end: fashion-NAME -->``, and tests/test_readme.py fails when they differ from what
docs/fashion.json gives. The prose around them is written by hand.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from reports import study  # noqa: E402
from reports.pages import update  # noqa: E402

RECORD = os.path.join(ROOT, "docs", "fashion.json")
PAGES = [os.path.join(ROOT, "docs", "fashion.md"), os.path.join(ROOT, "README.md")]


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.error = fail  # one error: line and exit status 2, as every script
    parser.add_argument("--from", dest="source", metavar="OUT_DIR",
                        help="record this study folder's runs as docs/fashion.json first")
    parser.add_argument("--wall_minutes", type=float,
                        help="the study's wall-clock minutes, as its runner measured them (default: from the "
                             "first run's start to the last run's end)")
    args = parser.parse_args(argv)
    if args.source:
        if not os.path.isdir(os.path.join(args.source, "fashion")):
            fail(f"{args.source} has no fashion/ folder: run scripts/fashion_tables.sh {args.source} first")
        with open(RECORD, "w") as f:
            json.dump(study.record(args.source, args.wall_minutes), f, indent=2)
            f.write("\n")
    with open(RECORD) as f:
        blocks = study.blocks(json.load(f))
    for page in PAGES:
        with open(page) as f:
            text = update(f.read(), blocks)  # before the page is opened for writing: a failure leaves it whole
        with open(page, "w") as f:
            f.write(text)
    print(f"docs/fashion.md and README.md regenerated from {os.path.relpath(RECORD, ROOT)}")


if __name__ == "__main__":
    main()
