#!/usr/bin/env bash
# The three results in about two minutes on a CPU, offline, on scikit-learn's DIGITS (8x8 digits):
#   1. two ConvFC networks trained from different seeds (with a checkpoint at 80% of training);
#   2. mode connectivity: the straight segment between them (a barrier of high error), and a
#      Bezier curve fitted between them (error stays low all along);
#      plane.py draws the loss surface in the plane of the curve (runs/demo/plane/plane.png);
#   3. FGE from the 80% checkpoint, SWA from scratch with the same epochs as one network, and
#      the ensemble of the two independent networks (Ind).
# All outputs go under runs/demo/ (or $1); the closing table is also in runs/demo/summary.json,
# with pictures curve_vs_segment.png and fge_ensemble.png.
#
#   usage: make demo      (or: bash scripts/demo.sh [OUT_DIR] [--dry-run])
# --dry-run prints the commands without running them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=runs/demo
DRY_RUN=0
for arg in "$@"; do
    case $arg in
        --dry-run) DRY_RUN=1 ;;
        -*) echo "error: unknown option $arg (usage: bash scripts/demo.sh [OUT_DIR] [--dry-run])" >&2; exit 2 ;;
        *) OUT=$arg ;;
    esac
done
DATA=(--dataset=DIGITS --use_test)

step() {  # step TITLE SCRIPT ARGS...: one stage, its table rows shown, progress bars on stderr
    echo
    echo "== $1"
    shift
    echo "$PY $*"
    if [[ $DRY_RUN == 0 ]]; then
        "$PY" "$@"
    fi
}

for seed in 1 2; do
    step "endpoint $seed: ConvFC, 20 epochs, seed $seed" train.py --dir="$OUT/endpoint-$seed" "${DATA[@]}" \
        --model=ConvFC --epochs=20 --lr=0.01 --wd=1e-4 --seed=$seed --save_freq=16
done
START=$OUT/endpoint-1/checkpoint-20.pt
END=$OUT/endpoint-2/checkpoint-20.pt

step "the straight segment between the endpoints" eval_curve.py --dir="$OUT/segment" "${DATA[@]}" \
    --init_start="$START" --init_end="$END" --num_points=31
step "a Bezier curve between them (3 bends, the middle one trained 10 epochs)" train.py \
    --dir="$OUT/curve" "${DATA[@]}" --model=ConvFC --curve=Bezier --num_bends=3 \
    --init_start="$START" --init_end="$END" --fix_start --fix_end --epochs=10 --lr=0.01 --wd=1e-4
step "the curve, point by point" eval_curve.py --dir="$OUT/curve-eval" "${DATA[@]}" \
    --ckpt="$OUT/curve/checkpoint-10.pt" --num_points=31
step "the loss surface in the plane of the curve's three bends" plane.py --dir="$OUT/plane" "${DATA[@]}" \
    --ckpt="$OUT/curve/checkpoint-10.pt"
step "FGE: 4 cycles of 2 epochs from endpoint 1 at 80% of its training" fge.py --dir="$OUT/fge" "${DATA[@]}" \
    --ckpt="$OUT/endpoint-1/checkpoint-16.pt" --epochs=8 --cycle=2 --lr_1=0.01 --lr_2=0.0005 --wd=1e-4
step "SWA from scratch, 20 epochs, averaging from epoch 16" swa.py --dir="$OUT/swa" "${DATA[@]}" \
    --model=ConvFC --epochs=20 --lr_init=0.01 --wd=1e-4 --swa --swa_start=16 --swa_lr=0.005 --seed=1
step "Ind: the ensemble of the two endpoints" eval_ensemble.py --dir="$OUT/ind" "${DATA[@]}" \
    --ckpt="$START" --ckpt="$END"

step "summary ($OUT/summary.json, pictures $OUT/curve_vs_segment.png and $OUT/fge_ensemble.png)" \
    scripts/demo_report.py "$OUT"
