#!/usr/bin/env bash
# The papers' results in a few minutes on a CPU, offline, on scikit-learn's DIGITS (8x8 digits):
#   1. mode connectivity: two ConvFC networks trained from different seeds, the straight segment
#      between them (a barrier of high error), the segment once the second is permuted to match the
#      first (Git Re-Basin's weight matching) and a Bezier curve fitted between them (error stays
#      low all along); plane.py draws the loss surface in the plane of the curve;
#   2. ensembles, averaging and subspaces, on He et al.'s ResNet20 (option-A shortcuts; the subspace
#      papers' code uses cResNet20, which scripts/subspaces_table.sh runs) with 20% of the
#      training labels replaced by random ones (clean DIGITS is nearly saturated: nothing separates
#      there): two SGD networks and their ensemble (Ind), FGE from the first at 80% of its training,
#      SWA, a line learned from scratch (its midpoint, and its endpoints' ensemble) beside one
#      network trained under the line's schedule, and ESPRO, a 3-vertex simplex grown from each
#      SGD network.
# All outputs go under runs/demo/ (or OUT_DIR, relative to the repository root); the closing
# table is also in runs/demo/summary.json, with pictures curve_vs_segment.png, fge_ensemble.png
# and noisy_labels.png. A run whose folder holds summary.json is done and skipped when the demo
# is started again.
#
#   usage: make demo      (or: bash scripts/demo.sh [OUT_DIR] [--dry-run] [--quick] [--jobs N | --gpus LIST | --slurm ...])
# --dry-run prints the commands without running them; --quick makes every run a few epochs long
# (for the tests); --jobs, --gpus and --slurm run the demo as a small table, as the *_table.sh
# scripts do. `make demo` is `--jobs 2`: two runs at a time, each with half the cores' threads
# (on 2 cores, two one-thread runs do 1.7x the work of one two-thread run; the runs' output is
# then in their logs, runs/demo/<run>.log); without --jobs the runs go one after the other here,
# with their progress bars.
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
STARTED_AT=$(date +%s)  # the report records the time from here to its own start
DATA=(--dataset=DIGITS --use_test)
NOISE=${NOISE:-0.2}  # the fraction of training labels made random in part 2 (NOISE=0.4 bash scripts/demo.sh ...)
# epochs of the networks, of the curve, of FGE and of a simplex's vertex; the 80% checkpoint;
# points evaluated along a path; a line's warm-up epochs; points a simplex step and its ensemble use
if ((QUICK)); then
    E=2 CURVE_E=1 FGE_E=2 VERTEX_E=1 START=1 POINTS=3 WARMUP=1 PLANE=(--grid_points=2 --curve_points=3)
    LINE=(--num_points=3) SIMPLEX=(--num_samples=2 --num_test_samples=2)
else
    E=20 CURVE_E=10 FGE_E=8 VERTEX_E=2 START=16 POINTS=31 WARMUP=2 PLANE=(--grid_points=15) LINE=() SIMPLEX=()
fi

title() {  # a stage's heading, before its command
    say ""
    say "# $1"
}

# ---- 1. mode connectivity: ConvFC, clean labels
for seed in 1 2; do
    title "endpoint $seed: ConvFC, $E epochs, seed $seed"
    run train.py "$OUT/endpoint-$seed" "${DATA[@]}" --model=ConvFC --epochs=$E --lr=0.01 --wd=1e-4 --seed=$seed
done
FIRST=$OUT/endpoint-1/checkpoint-$E.pt
SECOND=$OUT/endpoint-2/checkpoint-$E.pt

title "the straight segment between the endpoints"
run eval_curve.py "$OUT/segment" "${DATA[@]}" --init_start="$FIRST" --init_end="$SECOND" --num_points=$POINTS
title "endpoint 2 permuted to match endpoint 1 (Git Re-Basin's weight matching), and the segment between them"
run align.py "$OUT/aligned" "${DATA[@]}" --ckpt_a="$FIRST" --ckpt_b="$SECOND" --method=weights
run eval_curve.py "$OUT/segment-aligned" "${DATA[@]}" --init_start="$FIRST" --init_end="$OUT/aligned/aligned.pt" \
    --num_points=$POINTS
title "a Bezier curve between them (3 bends, the middle one trained $CURVE_E epochs)"
run train.py "$OUT/curve" "${DATA[@]}" --model=ConvFC --curve=Bezier --num_bends=3 \
    --init_start="$FIRST" --init_end="$SECOND" --fix_start --fix_end --epochs=$CURVE_E --lr=0.01 --wd=1e-4
title "the curve, point by point"
run eval_curve.py "$OUT/curve-eval" "${DATA[@]}" --ckpt="$OUT/curve/checkpoint-$CURVE_E.pt" --num_points=$POINTS
title "the loss surface in the plane of the curve's three bends"
run plane.py "$OUT/plane" "${DATA[@]}" --ckpt="$OUT/curve/checkpoint-$CURVE_E.pt" "${PLANE[@]}"

# ---- 2. ensembles, averaging and subspaces: ResNet20, 20% of the training labels random
NOISY=(--model=ResNet20 --wd=1e-4 --label_noise=$NOISE)
for seed in 1 2; do
    title "SGD $seed: ResNet20, $E epochs, seed $seed, labels ${NOISE} noisy"
    run train.py "$OUT/sgd-$seed" "${DATA[@]}" "${NOISY[@]}" --epochs=$E --lr=0.1 --save_freq=$START --seed=$seed
done
SGD1=$OUT/sgd-1/checkpoint-$E.pt
SGD2=$OUT/sgd-2/checkpoint-$E.pt
title "Ind: the ensemble of the two SGD networks"
run eval_ensemble.py "$OUT/ind" "${DATA[@]}" --ckpt="$SGD1" --ckpt="$SGD2"
title "FGE: $((FGE_E / 2)) cycles of 2 epochs from SGD 1 at 80% of its training"
run fge.py "$OUT/fge" "${DATA[@]}" --ckpt="$OUT/sgd-1/checkpoint-$START.pt" --epochs=$FGE_E \
    --cycle=2 --lr_1=0.05 --lr_2=0.0005 --wd=1e-4
title "SWA from scratch, $E epochs, averaging from epoch $START"
run swa.py "$OUT/swa" "${DATA[@]}" "${NOISY[@]}" --epochs=$E --lr_init=0.1 --swa --swa_start=$START \
    --swa_lr=0.01 --seed=1
title "a line of ResNet20s learned from scratch, $E epochs"
# --ece_bins=15: the ECE of the other rows' scripts, so that the table's ECE column is one binning
run train_subspace.py "$OUT/line" "${DATA[@]}" "${NOISY[@]}" --shape=line --epochs=$E --lr=0.1 \
    --warmup_epochs=$WARMUP --seed=1 --ece_bins=15 "${LINE[@]}"
title "the line's baseline: one ResNet20 under the line's schedule (warm-up, then cosine)"
run train.py "$OUT/one" "${DATA[@]}" "${NOISY[@]}" --epochs=$E --lr=0.1 --schedule=cosine --warmup_epochs=$WARMUP \
    --seed=1
title "ESPRO: a 3-vertex simplex grown from each SGD network, $VERTEX_E epochs a vertex"
run simplex.py "$OUT/espro" "${DATA[@]}" --ckpt="$SGD1" --ckpt="$SGD2" --num_vertices=3 \
    --epochs_per_vertex=$VERTEX_E --wd=1e-4 "${SIMPLEX[@]}"

title "summary ($OUT/summary.json, figures.json, pictures curve_vs_segment.png, fge_ensemble.png, noisy_labels.png)"
# no folder of its own: it waits for every run above. Made on this machine (here, or with --jobs)
# it records how long the demo took; it is not made again when no run finished after it
# (submit.py, too, skips it then)
report_is_current() {
    [[ -f $OUT/summary.json && -z $(find "$OUT" -mindepth 2 -name summary.json -newer "$OUT/summary.json" -print -quit) ]]
}
if ((HERE)) && report_is_current; then
    say "# done, skipped: the report ($OUT/summary.json)"
else
    timing=()
    if ((LOCAL)); then timing=(--started=$STARTED_AT "--jobs=${JOBS:-1}"); fi
    step "${PY[@]}" scripts/demo_report.py "$OUT" ${timing[@]+"${timing[@]}"}
fi
finish
if ((LOCAL && !HERE)); then  # --jobs: the report's tables went to its log
    "${PY[@]}" scripts/demo_report.py "$OUT" --show
fi

# The next step, on real images, where Fashion-MNIST is installed (the folders data.py reads it from)
fashion_installed() {
    local folder
    for folder in /usr/share/datasets/fashion-mnist "$ROOT/data" "$ROOT/data/FashionMNIST/raw"; do
        compgen -G "$folder/train-images-idx3-ubyte*" >/dev/null && return 0
    done
    return 1
}
if ((LOCAL)) && fashion_installed; then  # made on this machine (not a dry run, a status board or a submission)
    echo "# Fashion-MNIST is installed: the papers' tables in miniature on real images (3 seeds, about an
#   hour on 2 cores, two runs at a time; --seeds 1 in under 40 minutes; --gpus or --slurm spread it
#   further), then their tables:
#     bash scripts/fashion_tables.sh runs/study --jobs 2
#     python scripts/collect.py runs/study --table fashion
#   docs/fashion.md shows what they gave on this project's machine."
fi
