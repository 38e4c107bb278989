#!/usr/bin/env bash
# Lines, curves and simplexes of networks learned from scratch against standard training, the
# ensemble of two standard networks and SWA: Wortsman et al. 2021 (arXiv 2102.10472), Figures 4
# and 5, cResNet20 on CIFAR-10, with the settings of github.com/apple/learning-subspaces'
# experiment_configs/cifar10 (160 epochs, lr 0.1 with 5 warm-up epochs and cosine decay, wd 1e-4,
# batch 128, beta 1, VGG normalisation, the test set; seeds 0 and 1, standard training 0-2). Every
# ECE has learning-subspaces' 20 bins, every ensemble its rule: the argmax of the summed logits.
#
#   bash scripts/subspaces_table.sh DATA_PATH OUT_DIR [--dry-run] [--gpus 0,1,... | --slurm ...]
#   python scripts/collect.py OUT_DIR --table subspaces
#
# Runs, under OUT_DIR/subspaces/CIFAR10/cResNet20/:
#   standard-{0,1,2}         train.py --schedule cosine --warmup_epochs 5 (learning-subspaces' standard training)
#   ind-{0-1,0-2,1-2}        eval_ensemble.py --combine logits of each pair of standard networks: Ind is
#                            their mean, as eval_ensembles.py's mean over all 3 pairs of its 3 seeds
#   swa-{0,1}                swa.py, averaging over the last quarter (its --swa-start 0.75, --swa-lr 0.05;
#                            swa.py's own schedule before that, see the README's differences)
#   line-{0,1}, line-layerwise-{0,1}, curve-{0,1}            train_subspace.py (curve: 3 bends)
#   simplex{3,4,5,6}-{0,1}, simplex{3,4,5,6}-layerwise-{0,1} train_subspace.py --shape simplex
#
# Expect about 45 GPU-hours on a V100-class GPU in fp32 (a rough estimate: ~0.6 h per cResNet20
# run, a simplex of n vertices ~n/2 times that in its combination and cosine).
#
# Published numbers: the paper shows these results in figures; we found no text available here
# that states them, so collect.py marks its paper column "unconfirmed".
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_args "$@"
NAMES_FROM=$OUT/subspaces  # job names <dataset>/<model>/<run>

dir=$OUT/subspaces/CIFAR10/cResNet20
common=(--dataset=CIFAR10 --data_path="$DATA" --use_test --transform=VGG --model=cResNet20 --epochs=160 --lr=0.1
        --wd=1e-4)
subspace=("${common[@]}" --warmup_epochs=5 --beta=1)
ece=(--ece_bins=20)  # learning-subspaces' M = 20 (train_subspace.py's default)
for seed in 0 1 2; do
    run train.py "$dir/standard-$seed" "${common[@]}" --schedule=cosine --warmup_epochs=5 --save_freq=160 --seed=$seed \
        "${ece[@]}"
done
for pair in 0-1 0-2 1-2; do
    run eval_ensemble.py "$dir/ind-$pair" --data_path="$DATA" --use_test --combine=logits "${ece[@]}" \
        --ckpt="$dir/standard-${pair%-*}/checkpoint-160.pt" --ckpt="$dir/standard-${pair#*-}/checkpoint-160.pt"
done
for seed in 0 1; do
    run swa.py "$dir/swa-$seed" --dataset=CIFAR10 --data_path="$DATA" --use_test --transform=VGG --model=cResNet20 \
        --epochs=160 --lr_init=0.1 --wd=1e-4 --swa --swa_start=121 --swa_lr=0.05 --seed=$seed "${ece[@]}"
    run train_subspace.py "$dir/line-$seed" "${subspace[@]}" --shape=line --seed=$seed
    run train_subspace.py "$dir/line-layerwise-$seed" "${subspace[@]}" --shape=line --layerwise --seed=$seed
    run train_subspace.py "$dir/curve-$seed" "${subspace[@]}" --shape=curve --num_vertices=3 --seed=$seed
    for n in 3 4 5 6; do
        run train_subspace.py "$dir/simplex$n-$seed" "${subspace[@]}" --shape=simplex --num_vertices=$n --seed=$seed
        run train_subspace.py "$dir/simplex$n-layerwise-$seed" "${subspace[@]}" --shape=simplex --num_vertices=$n \
            --layerwise --seed=$seed
    done
done
finish
