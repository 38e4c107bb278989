"""Speed on this machine: each figure a ratio of two timings taken side by side in one run.

    python scripts/bench.py --quick --out runs/bench.json    # under 5 minutes on a 2-core CPU
    python scripts/bench.py --device cuda --quick --out runs/gpu-bench.json

The figures, their contenders and the original approach they are timed against are in the
benchmarks package (see its docstring); this is its command line.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402
from benchmarks.main import main  # noqa: E402

if __name__ == "__main__":
    cli.run(main)
