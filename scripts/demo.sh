#!/usr/bin/env bash
# The three results in about two minutes on a CPU, offline, on scikit-learn's DIGITS (8x8 digits):
#   1. two ConvFC networks trained from different seeds (with a checkpoint at 80% of training);
#   2. mode connectivity: the straight segment between them (a barrier of high error), and a
#      Bezier curve fitted between them (error stays low all along);
#      plane.py draws the loss surface in the plane of the curve (runs/demo/plane/plane.png);
#   3. FGE from the 80% checkpoint, SWA from scratch with the same epochs as one network, and
#      the ensemble of the two independent networks (Ind).
# All outputs go under runs/demo/ (or OUT_DIR, relative to the repository root); the closing
# table is also in runs/demo/summary.json, with pictures curve_vs_segment.png and fge_ensemble.png.
# A run whose folder holds summary.json is done and skipped when the demo is started again.
#
#   usage: make demo      (or: bash scripts/demo.sh [OUT_DIR] [--dry-run] [--quick] [--gpus LIST | --slurm ...])
# --dry-run prints the commands without running them; --quick makes every run a few epochs long
# (for the tests); --gpus and --slurm run the demo as a small table, as the *_table.sh scripts do.
PYTHON=${PYTHON:-.venv/bin/python}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

QUICK=0 args=()
for arg in "$@"; do
    if [[ $arg == --quick ]]; then QUICK=1; else args+=("$arg"); fi
done
parse_options "${args[@]}"
[[ ${#POSITIONAL[@]} -le 1 ]] || fail "expected at most one OUT_DIR"
OUT=${POSITIONAL[0]:-runs/demo}
cd "$ROOT"
say "cd $(quote "$ROOT")"
STARTED=$SECONDS
DATA=(--dataset=DIGITS --use_test)
# epochs of the endpoints, of the curve and of FGE; FGE's starting checkpoint (80%); curve points
if ((QUICK)); then
    E=2 CURVE_E=1 FGE_E=2 START=1 POINTS=3 PLANE=(--grid_points=2 --curve_points=3)
else
    E=20 CURVE_E=10 FGE_E=8 START=16 POINTS=31 PLANE=()
fi

title() {  # a stage's heading, before its command
    say ""
    say "# $1"
}

for seed in 1 2; do
    title "endpoint $seed: ConvFC, $E epochs, seed $seed"
    run train.py "$OUT/endpoint-$seed" "${DATA[@]}" --model=ConvFC --epochs=$E --lr=0.01 --wd=1e-4 \
        --seed=$seed --save_freq=$START
done
FIRST=$OUT/endpoint-1/checkpoint-$E.pt
SECOND=$OUT/endpoint-2/checkpoint-$E.pt

title "the straight segment between the endpoints"
run eval_curve.py "$OUT/segment" "${DATA[@]}" --init_start="$FIRST" --init_end="$SECOND" --num_points=$POINTS
title "a Bezier curve between them (3 bends, the middle one trained $CURVE_E epochs)"
run train.py "$OUT/curve" "${DATA[@]}" --model=ConvFC --curve=Bezier --num_bends=3 \
    --init_start="$FIRST" --init_end="$SECOND" --fix_start --fix_end --epochs=$CURVE_E --lr=0.01 --wd=1e-4
title "the curve, point by point"
run eval_curve.py "$OUT/curve-eval" "${DATA[@]}" --ckpt="$OUT/curve/checkpoint-$CURVE_E.pt" --num_points=$POINTS
title "the loss surface in the plane of the curve's three bends"
run plane.py "$OUT/plane" "${DATA[@]}" --ckpt="$OUT/curve/checkpoint-$CURVE_E.pt" "${PLANE[@]}"
title "FGE: $((FGE_E / 2)) cycles of 2 epochs from endpoint 1 at 80% of its training"
run fge.py "$OUT/fge" "${DATA[@]}" --ckpt="$OUT/endpoint-1/checkpoint-$START.pt" --epochs=$FGE_E \
    --cycle=2 --lr_1=0.01 --lr_2=0.0005 --wd=1e-4
title "SWA from scratch, $E epochs, averaging from epoch $START"
run swa.py "$OUT/swa" "${DATA[@]}" --model=ConvFC --epochs=$E --lr_init=0.01 --wd=1e-4 --swa \
    --swa_start=$START --swa_lr=0.005 --seed=1
title "Ind: the ensemble of the two endpoints"
run eval_ensemble.py "$OUT/ind" "${DATA[@]}" --ckpt="$FIRST" --ckpt="$SECOND"

title "summary ($OUT/summary.json, figures.json, pictures curve_vs_segment.png and fge_ensemble.png)"
# no folder of its own: it waits for every run above. Run here, it records how long the demo took.
step "${PY[@]}" scripts/demo_report.py "$OUT" $( ((HERE)) && echo "--seconds=$((SECONDS - STARTED))")
finish
