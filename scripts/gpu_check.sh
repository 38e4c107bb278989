#!/usr/bin/env bash
# Every CUDA path of the project in one command, for a machine with a GPU:
#
#   bash scripts/gpu_check.sh [--device cuda|cpu] [--tiny] [--out DIR] [--modes "fp32 bf16 fp16 compile"]
#
# (a) every script (train.py, train.py --curve, eval_curve.py, fge.py, swa.py --swag, swag.py,
#     eval_ensemble.py, plane.py, train_subspace.py, simplex.py, align.py, rays.py, hessian.py,
#     surface.py) a few steps on CIFAR-format stand-in data it writes under DIR/data, in each mode:
#     fp32; --amp --amp_dtype=bfloat16; --amp --amp_dtype=float16 (the gradient scaler); --compile;
# (b) the tests marked gpu (python -m pytest -q -m gpu tests/test_gpu.py; skipped without CUDA);
# (c) scripts/bench.py --device DEVICE (--quick; --tiny with --tiny), its figures in DIR/bench.json.
# One line per check (`ok   train.py  bf16  3.2 s`, or `FAIL train.py fp16: <first error line>`),
# the bench's figures table last; exit status 1 if a check failed, 2 for a bad command line.
# Each check's output is in DIR/logs/. Default device: cuda when torch sees one (else an error
# that says to use --device cpu); default DIR: runs/gpu_check; default modes: all four, fp32 with
# --tiny (fewer images and ConvFC: a minute or two on a 2-core CPU). Also: --scripts "NAME ...",
# --bench_only FIGURE, --no_tests, --no_bench (see python scripts/gpu_check.py --help).
# The interpreter: $PYTHON, else the repository's .venv (make's), else python.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${PYTHON:-} && -x $ROOT/.venv/bin/python ]]; then PYTHON=$ROOT/.venv/bin/python; fi
read -ra PY <<<"${PYTHON:-python}"
exec "${PY[@]}" "$ROOT/scripts/gpu_check.py" "$@"
