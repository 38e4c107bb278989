#!/usr/bin/env bash
# Mode connectivity: the curve tables of Garipov et al. 2018 (arXiv 1802.10026), as tabulated
# in github.com/timgaripov/dnn-mode-connectivity's README: min/max train loss and
# test error along Bezier and polygonal-chain curves (3 bends, endpoints fixed) between two
# independently trained networks, and along the straight segment between them.
#
#   bash scripts/curves_table.sh DATA_PATH OUT_DIR [--dry-run] [--gpus 0,1,... | --slurm ...]
#   python scripts/collect.py OUT_DIR --table curves
#
# Runs, per dataset (CIFAR10, CIFAR100) and model (VGG16, PreResNet164, WideResNet28x10),
# under OUT_DIR/curves/<dataset>/<model>/: endpoint-1, endpoint-2 (train.py, seeds 1 and 2),
# Bezier, PolyChain (train.py --curve), eval-segment, eval-Bezier, eval-PolyChain
# (eval_curve.py, 61 points).
#
# Expect about 85 GPU-hours on a V100-class GPU in fp32 (a rough estimate: per dataset
# VGG16 ~5 h, PreResNet164 ~9 h, WideResNet28x10 ~29 h); --amp on newer GPUs is faster.
#
# Published (test error %, train loss; README tables):   min loss  max loss  min err  max err
#   CIFAR-100  VGG16            Bezier                      0.48      0.89     27.4     30.1
#              PreResNet164     Bezier                      0.26      0.49     21.3     23.4
#              WideResNet28x10  Bezier                      0.11      0.21     18.3     19.2
#   CIFAR-10   VGG16            Bezier                      0.14      0.24     6.79     7.75
#              PreResNet164     Bezier                      0.09      0.18     4.45     4.97
#              WideResNet28x10  Bezier                      0.05      0.09     3.49     3.88
# (endpoints and PolyChain rows: see PAPER in scripts/collect.py)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_args "$@"
NAMES_FROM=$OUT/curves  # job names <dataset>/<model>/<run>

# The READMEs' commands.   endpoints:       curve:
#  model            transform  epochs lr   wd    epochs lr    wd
SETTINGS=(
    "VGG16           VGG        200   0.05 5e-4  600   0.015 5e-4"
    "PreResNet164    ResNet     150   0.1  3e-4  200   0.03  3e-4"
    "WideResNet28x10 ResNet     200   0.1  5e-4  200   0.03  5e-4"
)

for dataset in CIFAR10 CIFAR100; do
    for row in "${SETTINGS[@]}"; do
        read -r model transform epochs lr wd curve_epochs curve_lr curve_wd <<<"$row"
        dir=$OUT/curves/$dataset/$model
        common=(--dataset="$dataset" --data_path="$DATA" --use_test --transform="$transform" --model="$model")
        for seed in 1 2; do
            run train.py "$dir/endpoint-$seed" "${common[@]}" --epochs="$epochs" --lr="$lr" --wd="$wd" --seed="$seed"
        done
        ends=(--init_start="$dir/endpoint-1/checkpoint-$epochs.pt" --init_end="$dir/endpoint-2/checkpoint-$epochs.pt")
        run eval_curve.py "$dir/eval-segment" --data_path="$DATA" --use_test --wd="$wd" --num_points=61 "${ends[@]}"
        for curve in Bezier PolyChain; do
            run train.py "$dir/$curve" "${common[@]}" --curve="$curve" --num_bends=3 "${ends[@]}" \
                --fix_start --fix_end --epochs="$curve_epochs" --lr="$curve_lr" --wd="$curve_wd"
            run eval_curve.py "$dir/eval-$curve" --data_path="$DATA" --use_test --wd="$curve_wd" --num_points=61 \
                --ckpt="$dir/$curve/checkpoint-$curve_epochs.pt"
        done
    done
done
finish
