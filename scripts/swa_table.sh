#!/usr/bin/env bash
# Stochastic Weight Averaging against SGD: Table 1 of Izmailov et al. 2018 (arXiv 1803.05407),
# as tabulated in github.com/timgaripov/swa's README: test accuracy of SGD (one budget) and of
# SWA within 1, 1.25 and 1.5 budgets, on CIFAR-10 and CIFAR-100. A budget B is the epochs of
# one network's conventional training: 200 for VGG16 and WideResNet28x10, 150 for PreResNet164.
#
#   bash scripts/swa_table.sh DATA_PATH OUT_DIR [--dry-run] [--gpus 0,1,... | --slurm ...]
#   python scripts/collect.py OUT_DIR --table swa
#
# Runs, per dataset and model, under OUT_DIR/swa/<dataset>/<model>/: sgd (swa.py without
# --swa, B epochs), swa-1B, swa-1.25B, swa-1.5B (swa.py --swa, the README's swa_start and
# swa_lr; only the total epochs change with the budget: 1.25 x 150 is rounded up to 188).
#
# Expect about 65 GPU-hours on a V100-class GPU in fp32 (a rough estimate: per dataset
# VGG16 ~2 h, PreResNet164 ~6 h, WideResNet28x10 ~24 h).
#
# Published test accuracy (%), README:  SGD           SWA 1B        SWA 1.25B     SWA 1.5B
#   CIFAR-100  VGG16 (200)              72.55 ± 0.10  73.91 ± 0.12  74.17 ± 0.15  74.27 ± 0.25
#              PreResNet164 (150)       78.49 ± 0.36  79.77 ± 0.17  80.18 ± 0.23  80.35 ± 0.16
#              WideResNet28x10 (200)    80.82 ± 0.23  81.46 ± 0.23  81.91 ± 0.27  82.15 ± 0.27
#   CIFAR-10   VGG16 (200)              93.25 ± 0.16  93.59 ± 0.16  93.70 ± 0.22  93.64 ± 0.18
#              PreResNet164 (150)       95.28 ± 0.10  95.56 ± 0.11  95.77 ± 0.04  95.83 ± 0.03
#              WideResNet28x10 (200)    96.18 ± 0.11  96.45 ± 0.11  96.64 ± 0.08  96.79 ± 0.05
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_args "$@"
NAMES_FROM=$OUT/swa  # job names <dataset>/<model>/<run>

# The README's commands (the same for both datasets except PreResNet's swa_lr).
#  dataset  model            transform  B    lr_init wd    swa_start swa_lr
SETTINGS=(
    "CIFAR10  VGG16           VGG        200  0.05    5e-4  161       0.01"
    "CIFAR100 VGG16           VGG        200  0.05    5e-4  161       0.01"
    "CIFAR10  PreResNet164    ResNet     150  0.1     3e-4  126       0.01"
    "CIFAR100 PreResNet164    ResNet     150  0.1     3e-4  126       0.05"
    "CIFAR10  WideResNet28x10 ResNet     200  0.1     5e-4  161       0.05"
    "CIFAR100 WideResNet28x10 ResNet     200  0.1     5e-4  161       0.05"
)

for row in "${SETTINGS[@]}"; do
    read -r dataset model transform B lr_init wd swa_start swa_lr <<<"$row"
    dir=$OUT/swa/$dataset/$model
    common=(--dataset="$dataset" --data_path="$DATA" --use_test --transform="$transform" --model="$model"
            --lr_init="$lr_init" --wd="$wd")
    run swa.py "$dir/sgd" "${common[@]}" --epochs="$B"
    for budget in 1:100 1.25:125 1.5:150; do  # name:percent of B
        epochs=$(((B * ${budget#*:} + 99) / 100))
        run swa.py "$dir/swa-${budget%:*}B" "${common[@]}" --epochs="$epochs" \
            --swa --swa_start="$swa_start" --swa_lr="$swa_lr"
    done
done
finish
