#!/usr/bin/env bash
# Fast Geometric Ensembling against independent ensembles (Ind) and Snapshot Ensembles (SSE):
# Table 2 of Garipov et al. 2018 (arXiv 1802.10026), CIFAR-100, for 1, 2 and 3 budgets, as
# tabulated in github.com/timgaripov/dnn-mode-connectivity's README. A budget B is the epochs
# of one network's conventional training: 200 for each model here (the README's commands).
#
#   bash scripts/fge_table.sh DATA_PATH OUT_DIR [--dry-run] [--gpus 0,1,... | --slurm ...]
#   python scripts/collect.py OUT_DIR --table fge
#
# Runs, per model, under OUT_DIR/fge/CIFAR100/<model>/:
#   endpoint-{1,2,3}  train.py for B epochs (seeds 1-3), a checkpoint every B/5 epochs
#   fge-run{1,2,3}    fge.py from endpoint-i's checkpoint at 0.8 B, for 0.2 B epochs: 1 budget
#   ind-{2,3}B        eval_ensemble.py over the first 2 or 3 endpoints (Ind 1B: endpoint-1)
#   fge-{2,3}B        eval_ensemble.py over the snapshots of the first 2 or 3 FGE runs
#                     (FGE 1B: fge-run1)
#   sse-{1,2,3}B      fge.py --schedule cosine from scratch for k B epochs, cycles of B/5
#                     (our choice of SSE settings; the README gives no command for SSE)
#
# Expect about 70 GPU-hours on a V100-class GPU in fp32 (a rough estimate: VGG16 ~4 h,
# PreResNet164 ~16 h, WideResNet28x10 ~48 h; SSE is 60% of it).
#
# Published test accuracy (%), README:   1 budget    2 budgets  3 budgets
#   VGG16            Ind                 72.5 ± 0.1  74.8       75.6
#                    FGE                 74.6 ± 0.1  76.1       76.6
#   PreResNet164     Ind                 78.4 ± 0.1  80.5       81.6
#                    FGE                 80.3 ± 0.2  81.3       81.7
#   WideResNet28x10  Ind                 80.8 ± 0.3  82.4       83.0
#                    FGE                 82.3 ± 0.2  82.9       83.2
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_args "$@"
NAMES_FROM=$OUT/fge  # job names <dataset>/<model>/<run>

B=200
# The README's commands.  endpoint:     FGE:
#  model            transform  lr   wd    lr_1  lr_2  cycle
SETTINGS=(
    "VGG16           VGG        0.05 5e-4  1e-2  1e-2  2"
    "PreResNet164    ResNet     0.1  3e-4  0.05  0.01  2"
    "WideResNet28x10 ResNet     0.1  5e-4  0.05  0.01  2"
)

for row in "${SETTINGS[@]}"; do
    read -r model transform lr wd lr_1 lr_2 cycle <<<"$row"
    dir=$OUT/fge/CIFAR100/$model
    common=(--dataset=CIFAR100 --data_path="$DATA" --use_test --transform="$transform")
    start=$((B * 4 / 5))
    endpoints=() snapshots=()
    for i in 1 2 3; do
        run train.py "$dir/endpoint-$i" "${common[@]}" --model="$model" --epochs=$B --lr="$lr" --wd="$wd" \
            --save_freq=$((B / 5)) --seed=$i
        run fge.py "$dir/fge-run$i" "${common[@]}" --ckpt="$dir/endpoint-$i/checkpoint-$start.pt" \
            --epochs=$((B - start)) --wd="$wd" --lr_1="$lr_1" --lr_2="$lr_2" --cycle="$cycle"
        run fge.py "$dir/sse-${i}B" "${common[@]}" --model="$model" --schedule=cosine --epochs=$((i * B)) \
            --cycle=$((B / 5)) --lr_1="$lr" --wd="$wd" --seed=$i
        endpoints+=(--ckpt="$dir/endpoint-$i/checkpoint-$B.pt")
        # fge.py names a snapshot by its epoch counted from the checkpoint's: mid-cycle, every cycle
        for epoch in $(seq $((start + cycle / 2)) "$cycle" $B); do
            snapshots+=(--ckpt="$dir/fge-run$i/fge-$epoch.pt")
        done
        if ((i > 1)); then
            run eval_ensemble.py "$dir/ind-${i}B" --data_path="$DATA" --use_test "${endpoints[@]}"
            run eval_ensemble.py "$dir/fge-${i}B" --data_path="$DATA" --use_test "${snapshots[@]}"
        fi
    done
done
finish
