#!/usr/bin/env bash
# Linear mode connectivity modulo permutation (Ainsworth et al., Git Re-Basin, ICLR 2023; Jordan et al.,
# REPAIR, ICLR 2023) on Fashion-MNIST, every figure over the 3 pairs of 3 networks as mean ± std:
#   the test-error barrier of the straight segment between two independently trained networks
#   (its worst point's error minus the worse endpoint's) before alignment, after weight matching,
#   after activation matching, and after weight matching with REPAIR (networks without BatchNorm;
#   with BatchNorm, eval_curve.py recomputes the statistics at every point, which is what REPAIR
#   does for them); and a Bezier curve between the aligned endpoints against one between the
#   unaligned endpoints (worst point, length).
#
#   bash scripts/alignment_table.sh OUT_DIR [--models "MLP3x512 ResNet20 ResNet20x4"] [--data_path PATH]
#                                           [--dry-run] [--gpus LIST | --slurm ...]
#   python scripts/collect.py OUT_DIR --table alignment [--json FILE]
#
# Models (default all three): MLP3x512, Git Re-Basin's MLP (three hidden layers of 512); ResNet20 and
# ResNet20x4, the CIFAR ResNet at widths x1 and x4 (option-A shortcuts, BatchNorm): Git Re-Basin
# reports the barrier falling toward zero for MLPs on MNIST, and with width for ResNets.
# Cost on this project's 2-core AMD EPYC, one thread a run: the MLP's study about 45 core-minutes;
# a ResNet20 epoch of Fashion-MNIST about 230 s, ResNet20x4's about ten times that: those two are
# for GPUs (--gpus, --slurm).
#
# Settings, shared with scripts/fashion_tables.sh (chosen there on the validation split for the
# zoo's MLP, and taken unchanged here, never from these runs' test figures): SGD, the mode-
# connectivity schedule, B = 40 epochs, lr 0.01, wd 5e-4, batch 128, no augmentation for the MLP
# (the dataset's crops and flips for the ResNets, which are translation-equivariant); 21 points a
# segment; curves of 3 bends with fixed ends, B / 2 epochs at 0.3 x lr (the mode-connectivity README's
# ratio of rates). Weight matching: Git Re-Basin's (coordinate descent, random group order); activation
# matching on all training images, Pearson correlations.
#
# Runs, under OUT_DIR/alignment/FashionMNIST/<model>/: endpoint-i (train.py, seeds 1-3); for pair k
# (networks k and k mod 3 + 1): segment-k, aligned-weights-k and segment-weights-k, aligned-activations-k
# and segment-activations-k, segment-repair-k (MLP), bezier-k and eval-bezier-k (unaligned ends),
# bezier-weights-k and eval-bezier-weights-k (the weight-matched end).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread a run (see scripts/fashion_tables.sh)

parse_study_args models "MLP3x512 ResNet20 ResNet20x4" "$@"
MODELS=$OPTION
for model in $MODELS; do
    [[ $model =~ ^(MLP3x512|ResNet20|ResNet20x4)$ ]] || fail "--models: $model is not MLP3x512, ResNet20 or ResNet20x4"
done
NAMES_FROM=$OUT/alignment  # job names <dataset>/<model>/<run>
say "cd $(quote "$ROOT")"
cd "$ROOT"

B=40 LR=0.01 WD=5e-4 POINTS=21 NETWORKS=3
CURVE_EPOCHS=$((B / 2))
read -r CURVE_LR <<<"$(awk "BEGIN { printf \"%g\", $LR * 0.3 }")"

for model in $MODELS; do
    dir=$OUT/alignment/FashionMNIST/$model
    data=(--dataset=FashionMNIST --data_path="$DATA" --use_test --transform=VGG)
    [[ $model == MLP3x512 ]] && data+=(--no_augment)
    for i in $(seq $NETWORKS); do
        run train.py "$dir/endpoint-$i" "${data[@]}" --model="$model" --epochs=$B --lr="$LR" --wd="$WD" \
            --save_freq=$B --seed="$i"
    done
    for k in $(seq $NETWORKS); do
        j=$((k % NETWORKS + 1))
        a=$dir/endpoint-$k/checkpoint-$B.pt b=$dir/endpoint-$j/checkpoint-$B.pt
        segment=("${data[@]}" --wd="$WD" --num_points=$POINTS --init_start="$a")
        run eval_curve.py "$dir/segment-$k" "${segment[@]}" --init_end="$b"
        for method in weights activations; do
            run align.py "$dir/aligned-$method-$k" "${data[@]}" --ckpt_a="$a" --ckpt_b="$b" --method=$method --seed="$k"
            run eval_curve.py "$dir/segment-$method-$k" "${segment[@]}" --init_end="$dir/aligned-$method-$k/aligned.pt"
        done
        if [[ $model == MLP3x512 ]]; then  # no BatchNorm: REPAIR's rescaling
            run eval_curve.py "$dir/segment-repair-$k" "${segment[@]}" --init_end="$dir/aligned-weights-$k/aligned.pt" \
                --repair
        fi
        for end in plain weights; do
            name=bezier-$k target=$b
            [[ $end == weights ]] && name=bezier-weights-$k target=$dir/aligned-weights-$k/aligned.pt
            run train.py "$dir/$name" "${data[@]}" --model="$model" --curve=Bezier --num_bends=3 --init_start="$a" \
                --init_end="$target" --fix_start --fix_end --epochs=$CURVE_EPOCHS --lr="$CURVE_LR" --wd="$WD" \
                --seed="$k"
            run eval_curve.py "$dir/eval-$name" "${data[@]}" --ckpt="$dir/$name/checkpoint-$CURVE_EPOCHS.pt" \
                --wd="$WD" --num_points=$POINTS
        done
    done
done
finish
