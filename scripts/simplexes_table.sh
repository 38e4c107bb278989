#!/usr/bin/env bash
# ESPRO (ensembles of simplexes grown from trained networks) against deep ensembles (Ind) and FGE:
# Benton et al. 2021 (arXiv 2102.13042), VGG16 on CIFAR-10 and CIFAR-100, with the settings of
# github.com/g-benton/loss-surface-simplexes' experiments/vgg-cifar{10,100} (networks: 300 epochs,
# lr 0.05, cosine, wd 5e-4; simplexes: 4 vertices, 10 epochs a vertex on CIFAR-10 and 20 on
# CIFAR-100, lr 0.01 with cosine decay, lambda 1e-6, 5 points a step).
#
#   bash scripts/simplexes_table.sh DATA_PATH OUT_DIR [--dry-run] [--gpus 0,1,... | --slurm ...]
#   python scripts/collect.py OUT_DIR --table simplexes
#
# Runs, per dataset, under OUT_DIR/simplexes/<dataset>/VGG16/:
#   base-{1,2,3}      train.py --schedule cosine, 300 epochs (seeds 1-3)
#   ind-{2,3}         eval_ensemble.py of the first 2 or 3 networks (Ind of 1: base-1)
#   espro             simplex.py from base-1, 2 and 3: ESPRO of the first k simplexes for k = 1, 2, 3
#                     (summary.json's ensemble_acc_by_simplexes; k = 1 is SPRO)
#   fge-run{1,2,3}    fge.py from base-i's last checkpoint for the epochs a simplex's growth costs
#                     (3 vertices x E epochs x 5 points: 150 on CIFAR-10, 300 on CIFAR-100): a
#                     component of FGE then has ESPRO's budget; cycles of 2 epochs at the FGE
#                     table's VGG16 rates
#   fge-{2,3}         eval_ensemble.py of the snapshots of the first 2 or 3 FGE runs
#
# The original trains on the sum of the 5 points' losses (its `acc_loss.div(nsample)` discards the
# division); simplex.py averages them. SGD with momentum takes the same steps on the mean at 5 x the
# rate, a fifth of the weight decay and a fifth of lambda: --lr 0.05 --wd 1e-4 --volume_reg 2e-7 here
# are the original's 0.01, 5e-4 and 1e-6.
#
# Expect about 90 GPU-hours on a V100-class GPU in fp32 (a rough estimate: VGG16 ~1.5 h per 100
# epochs; per dataset 900 epochs of networks, 450-900 epoch-equivalents of simplexes and as many of FGE).
#
# Published numbers: the paper shows ESPRO against deep ensembles in figures; we found no text
# available here that states them, so collect.py marks its paper column "unconfirmed".
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_args "$@"
NAMES_FROM=$OUT/simplexes  # job names <dataset>/<model>/<run>

#  dataset   epochs a vertex
SETTINGS=(
    "CIFAR10  10"
    "CIFAR100 20"
)
for row in "${SETTINGS[@]}"; do
    read -r dataset vertex_epochs <<<"$row"
    dir=$OUT/simplexes/$dataset/VGG16
    common=(--dataset="$dataset" --data_path="$DATA" --use_test --transform=VGG)
    growth=$((3 * vertex_epochs * 5))  # 3 new vertices, 5 forward-backward passes a step
    starts=() snapshots=()
    for i in 1 2 3; do
        run train.py "$dir/base-$i" "${common[@]}" --model=VGG16 --epochs=300 --lr=0.05 --wd=5e-4 \
            --schedule=cosine --save_freq=300 --seed=$i
        starts+=(--ckpt="$dir/base-$i/checkpoint-300.pt")
        run fge.py "$dir/fge-run$i" "${common[@]}" --ckpt="$dir/base-$i/checkpoint-300.pt" --epochs=$growth \
            --wd=5e-4 --lr_1=1e-2 --lr_2=1e-2 --cycle=2
        for epoch in $(seq 301 2 $((300 + growth))); do  # fge.py names a snapshot by the epoch it ends
            snapshots+=(--ckpt="$dir/fge-run$i/fge-$epoch.pt")
        done
        if ((i > 1)); then
            run eval_ensemble.py "$dir/ind-$i" --data_path="$DATA" --use_test "${starts[@]}"
            run eval_ensemble.py "$dir/fge-$i" --data_path="$DATA" --use_test "${snapshots[@]}"
        fi
    done
    run simplex.py "$dir/espro" "${common[@]}" "${starts[@]}" --num_vertices=4 --epochs_per_vertex="$vertex_epochs" \
        --lr=0.05 --wd=1e-4 --volume_reg=2e-7 --num_samples=5 --num_test_samples=5
done
finish
