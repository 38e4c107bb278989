#!/usr/bin/env bash
# The papers' tables in miniature on real images, on a CPU: Fashion-MNIST (60,000 training and 10,000
# test images of 28x28, Debian's dataset-fashion-mnist), the zoo's MLP, every figure over --seeds seeds
# (default 3) as mean ± standard deviation, beside the published CIFAR effect:
#   curves (Garipov et al. 2018, Table 1): the endpoints, the straight segment's and the Bezier and
#     PolyChain curves' worst points (test error, train loss);
#   ensembles (Garipov et al. 2018, Table 2): Ind, SSE and FGE at 1 and 2 budgets (test error, NLL);
#   averaging (Izmailov et al. 2018, Table 1): SGD at 1 budget against SWA at 1 and 1.5 budgets;
#   subspaces (Wortsman et al. 2021; Benton et al. 2021): a learned line's midpoint and its endpoints'
#     ensemble against SGD trained under the line's schedule and Ind; ESPRO against Ind.
#
#   bash scripts/fashion_tables.sh OUT_DIR [--seeds N] [--data_path PATH] [--dry-run] [--gpus LIST | --slurm ...]
#   python scripts/collect.py OUT_DIR --table fashion [--json FILE]
#
# The images: --data_path (default: the repository's data/), else /usr/share/datasets/fashion-mnist/
# (apt-get install dataset-fashion-mnist), else data/FashionMNIST/raw/, else torchvision's download.
# Every run evaluates on the test set (--use_test), as the papers' tables do.
#
# The model: the MLP (784-256-256-10, ReLU). On this project's 2-core AMD EPYC (AVX2, no AVX-512), one
# thread trains and tests an MLP epoch of 60,000 images in about 2.3 s (fp32), ConvFC's in about 110 s,
# ResNet20's in about 230 s (--amp is slower there: no native bfloat16): of the zoo only the MLP fits the
# ~1,500 epoch-equivalents of the study into the budget. Git Re-Basin shows its (Fashion-)MNIST results on
# an MLP too. fp32: an MLP gains nothing from bfloat16 on a CPU.
#
# Time on that machine, one run after another, before SWAG, the rays and the Hessian were added: --seeds 1
# took 27 min (1,400 s of one core), 3 seeds about 60 min. With them (72 runs), --gpus 0,0 took about
# 54 min for 3 seeds on 2026-12-01 (its runs' span less a pause; the cores shared with other work at
# times), where the rays of one seed take about 3 min and SWAG's and the Hessian's under 1. Each run computes on one
# thread (OMP_NUM_THREADS=1 unless set): the MLP's small products gain little from a second thread, and a
# second thread that shares its core with any other program makes every step wait for it (measured 20x
# slower). On a CPU of 2 cores, --jobs 2 runs two single-threaded runs at once (scripts/with_gpu.sh;
# the study above ran with --gpus 0,0, the same two slots before --jobs existed).
#
# Runs, under OUT_DIR/fashion/FashionMNIST/MLP/. Networks i = 1..M (M = N seeds, N + 1 below 3 seeds),
# seed k's pair of networks (k, k mod M + 1): with 3 seeds the 3 pairs of 3 networks, as
# learning-subspaces' Ind. Reused across tables, as the original experiments allow:
#   endpoint-i     train.py, the mode-connectivity schedule, B epochs: the curves' endpoints, Ind,
#                  FGE's start (its checkpoint at 0.8 B)
#   fge-i          fge.py from endpoint-i at 0.8 B for 0.2 B epochs: FGE of 1 budget
#   standard-i     train.py --schedule cosine with the line's warm-up: the line's SGD, the subspace Ind
#                  (with --combine logits) and ESPRO's starting networks
#   segment-k, bezier-k, polychain-k, eval-{bezier,polychain}-k   the curves of pair k
#   ind-2B-k, fge-2B-k      eval_ensemble.py of pair k's endpoints, of their FGE snapshots: 2 budgets
#   sse-1B-k, sse-2B-k      fge.py --schedule cosine from scratch, 1 and 2 budgets, cycles of B/5
#   sgd-k, swa-1B-k         swa.py, B epochs, without and with --swa
#   swa-1.5B-k              swa-1B-k continued (--resume) to 1.5 B: the same run as one of 1.5 B from
#                           scratch (the schedule depends on swa_start, not on the total), at half the cost
#   line-k, ind-line-k      train_subspace.py --shape line; eval_ensemble.py --combine logits of pair k's
#                           standard networks (learning-subspaces' rule: the argmax of the summed logits)
#   swag-k, swag-diag-k     swag.py from swa-1B-k's swag.pt: SWAG and SWAG-Diagonal
#   rays-k, hessian-{sgd,swa-1B,fge}-k   rays.py and hessian.py at sgd-k's and swa-1B-k's solutions and
#                           at fge-k's last snapshot
#   espro-k                 simplex.py from pair k's standard networks: ESPRO of 2 simplexes, and their
#                           starting networks' Ind by probabilities (its start_ensemble_acc)
#
# How each setting was chosen (never from test figures of a method):
#   B = 40 epochs, the budget: from the compute budget (about 500 epoch-equivalents a seed).
#   no augmentation (--no_augment), lr 0.01, wd 5e-4 (SGD, momentum 0.9, batch 128): on the validation
#     split (--no_use_test: the last 5,000 training images held out; seed 1, B epochs, the mode-connectivity
#     schedule), validation accuracy %:      lr 0.005   0.01   0.02   0.05   0.1
#         no augmentation                      89.58   90.14  89.72  89.74    -
#         horizontal flips only                  -     89.74  89.86    -      -
#         Fashion-MNIST's crops and flips        -     88.72  89.20  88.90  86.62
#     (an MLP is not translation-equivariant: shifted images are new inputs to it); wd is VGG16's.
#   curves: 3 bends, fixed ends, C = B epochs (WideResNet's ratio in the mode-connectivity README;
#     PreResNet's is 1.33, VGG16's 3), lr 0.3 x lr (every model's ratio there), POINTS = 21 points.
#   FGE: from 0.8 B for 0.2 B epochs, cycles of 2 epochs, lr_1 = lr_2 = 0.2 x lr: VGG16's command.
#   SSE: cycles of B/5 epochs from lr (scripts/fge_table.sh's settings).
#   SWA: swa_start 0.8 B + 1, swa_lr 0.2 x lr_init: VGG16's command (161 of 200 epochs, 0.01 of 0.05).
#   line: the endpoints' lr and wd, warm-up B x 5/160 epochs (at least 1) then cosine, beta 1,
#     learning-subspaces' ratios; its SGD the same schedule.
#   SWAG: the SWA run's phase, K = min(20, its B/5 collected epochs), 30 draws at scale 0.5 (the paper's).
#   rays: 10 directions (the SWA paper's), 11 points each (every 4), out to 40 in weight space (about twice the trained MLP's norm;
#     wd's L2 term alone caps the train-loss width near sqrt(2 x 0.1 / 5e-4) = 20: nll_width is reported too).
#   Hessian: the first 5,000 training images (PyHessian's example takes 200; an MLP affords more).
#   ESPRO: 4 vertices, max(1, B/30) epochs a vertex (loss-surface-simplexes' 10 of 300), 5 points a step
#     and 5 test points; simplex.py's mean of the points at 5 x the original's rate (0.2 x the networks'),
#     a fifth of its wd and lambda 1e-6 / 5 (as scripts/simplexes_table.sh).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # see above

parse_study_args seeds 3 "$@"
SEEDS=$OPTION
[[ $SEEDS =~ ^[1-9][0-9]*$ ]] || fail "--seeds must be a positive number of seeds, not '$SEEDS'"
NAMES_FROM=$OUT/fashion  # job names <dataset>/<model>/<run>
say "cd $(quote "$ROOT")"
cd "$ROOT"

B=40 LR=0.01 WD=5e-4 POINTS=21 SWAG_RANK=$((B / 5 < 20 ? B / 5 : 20)) RAY_LENGTH=40 RAY_POINTS=11 HESSIAN_IMAGES=5000
START=$((B * 4 / 5)) FGE_EPOCHS=$((B / 5)) CYCLE=2 LAST_SNAPSHOT=$((B - CYCLE / 2)) SWA_START=$((B * 4 / 5 + 1))
WARMUP=$(((B * 5 + 80) / 160)) WARMUP=$((WARMUP > 0 ? WARMUP : 1))
VERTEX_EPOCHS=$((B / 30 > 0 ? B / 30 : 1))
read -r CURVE_LR FGE_LR SWA_LR SIMPLEX_WD <<<"$(awk "BEGIN { printf \"%g %g %g %g\", $LR * 0.3, $LR * 0.2, $LR * 0.2, $WD / 5 }")"
NETWORKS=$((SEEDS >= 3 ? SEEDS : SEEDS + 1))
pair() { echo $(($1 % NETWORKS + 1)); }  # the other network of seed $1's pair

dir=$OUT/fashion/FashionMNIST/MLP
data=(--dataset=FashionMNIST --data_path="$DATA" --use_test --transform=VGG --no_augment)
sgd=(--lr="$LR" --wd="$WD")
for i in $(seq "$NETWORKS"); do
    run train.py "$dir/endpoint-$i" "${data[@]}" --model=MLP --epochs=$B "${sgd[@]}" --save_freq=$((B / 5)) --seed="$i"
    run fge.py "$dir/fge-$i" "${data[@]}" --ckpt="$dir/endpoint-$i/checkpoint-$START.pt" --epochs=$FGE_EPOCHS \
        --wd="$WD" --lr_1="$FGE_LR" --lr_2="$FGE_LR" --cycle=$CYCLE --seed="$i"
    run train.py "$dir/standard-$i" "${data[@]}" --model=MLP --epochs=$B "${sgd[@]}" --schedule=cosine \
        --warmup_epochs=$WARMUP --save_freq=$B --seed="$i"
done

snapshots() {  # fge.py's snapshot files of network $1 (named by the epoch they end, counted from the start)
    local epoch
    for epoch in $(seq $((START + CYCLE / 2)) $CYCLE $B); do echo "--ckpt=$dir/fge-$1/fge-$epoch.pt"; done
}
for k in $(seq "$SEEDS"); do
    j=$(pair "$k")
    ends=(--init_start="$dir/endpoint-$k/checkpoint-$B.pt" --init_end="$dir/endpoint-$j/checkpoint-$B.pt")
    # curves (Table 1)
    run eval_curve.py "$dir/segment-$k" "${data[@]}" "${ends[@]}" --wd="$WD" --num_points=$POINTS
    for curve in Bezier PolyChain; do
        name=$(tr '[:upper:]' '[:lower:]' <<<"$curve")
        run train.py "$dir/$name-$k" "${data[@]}" --model=MLP --curve="$curve" --num_bends=3 "${ends[@]}" \
            --fix_start --fix_end --epochs=$B --lr="$CURVE_LR" --wd="$WD" --seed="$k"
        run eval_curve.py "$dir/eval-$name-$k" "${data[@]}" --ckpt="$dir/$name-$k/checkpoint-$B.pt" --wd="$WD" \
            --num_points=$POINTS
    done
    # ensembles (Table 2)
    run eval_ensemble.py "$dir/ind-2B-$k" "${data[@]}" --ckpt="$dir/endpoint-$k/checkpoint-$B.pt" \
        --ckpt="$dir/endpoint-$j/checkpoint-$B.pt"
    mapfile -t members < <(snapshots "$k"; snapshots "$j")
    run eval_ensemble.py "$dir/fge-2B-$k" "${data[@]}" "${members[@]}"
    for budget in 1 2; do
        run fge.py "$dir/sse-${budget}B-$k" "${data[@]}" --model=MLP --schedule=cosine --epochs=$((budget * B)) \
            --cycle=$((B / 5)) --lr_1="$LR" --wd="$WD" --seed="$k"
    done
    # averaging (SWA Table 1)
    swa=("${data[@]}" --model=MLP --lr_init="$LR" --wd="$WD" --ece_bins=20 --seed="$k")  # the SWAG code's bins
    run swa.py "$dir/sgd-$k" "${swa[@]}" --epochs=$B
    run swa.py "$dir/swa-1B-$k" "${swa[@]}" --epochs=$B --swa --swa_start=$SWA_START --swa_lr="$SWA_LR" --save_freq=$B \
        --swag --max_num_models=$SWAG_RANK
    run swa.py "$dir/swa-1.5B-$k" "${data[@]}" --resume="$dir/swa-1B-$k/checkpoint-$B.pt" --epochs=$((B * 3 / 2))
    # SWAG (Maddox et al. 2019, Table/Figure of calibration): the SWA phase of swa-1B-k, its 30 draws at scale 0.5
    run swag.py "$dir/swag-$k" "${data[@]}" --ckpt="$dir/swa-1B-$k/swag.pt" --seed="$k"
    run swag.py "$dir/swag-diag-$k" "${data[@]}" --ckpt="$dir/swa-1B-$k/swag.pt" --no_cov_mat --seed="$k"
    # the landscape: width along random rays (Izmailov et al. 2018, Figure 5) and the Hessian's top
    # eigenvalue and trace (PyHessian) at SGD's solution, at SWA's and at FGE's last snapshot
    ats=(--ckpt="$dir/sgd-$k/checkpoint-$B.pt" --ckpt="$dir/swa-1B-$k/swa.pt" --ckpt="$dir/fge-$k/fge-$LAST_SNAPSHOT.pt")
    run rays.py "$dir/rays-$k" "${data[@]}" "${ats[@]}" \
        --num_directions=10 --max_distance=$RAY_LENGTH --num_points=$RAY_POINTS --wd="$WD" --train_eval=plain --seed="$k"
    for at in "${ats[@]}"; do
        name=$(basename "$(dirname "${at#--ckpt=}")")  # sgd-k, swa-1B-k, fge-k
        run hessian.py "$dir/hessian-${name%-"$k"}-$k" "${data[@]}" "$at" --num_images=$HESSIAN_IMAGES --trace --seed="$k"
    done
    # subspaces
    run train_subspace.py "$dir/line-$k" "${data[@]}" --model=MLP --shape=line --epochs=$B "${sgd[@]}" \
        --warmup_epochs=$WARMUP --beta=1 --num_points=3 --save_freq=$B --seed="$k"
    standards=(--ckpt="$dir/standard-$k/checkpoint-$B.pt" --ckpt="$dir/standard-$j/checkpoint-$B.pt")
    run eval_ensemble.py "$dir/ind-line-$k" "${data[@]}" --combine=logits "${standards[@]}"
    run simplex.py "$dir/espro-$k" "${data[@]}" "${standards[@]}" --num_vertices=4 \
        --epochs_per_vertex=$VERTEX_EPOCHS --lr="$LR" --wd="$SIMPLEX_WD" --volume_reg=2e-7 --num_samples=5 \
        --num_test_samples=5 --seed="$k"
done
finish
