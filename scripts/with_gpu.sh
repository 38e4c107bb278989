#!/usr/bin/env bash
# with_gpu.sh LOCK_DIR GPUS LOG COMMAND...: run COMMAND on a free GPU of GPUS (e.g. 0,1,2,3), its
# output appended to LOG: the recipe of each run in the Makefile that scripts/submit.py --gpus
# hands to make -j.
#
# A GPU is taken by holding its lock file in LOCK_DIR (flock) for as long as COMMAND runs; the
# kernel drops the lock when this script exits, however it exits, so none is ever left stale.
# make -j <number of GPUs> starts no more runs than there are GPUs, so one is free, unless
# another table script started with the same GPUs holds it: then this run waits its turn.
# An id listed twice (0,0,1,1) is two slots on that GPU: two runs share it. The id `cpu` is a slot
# of submit.py --jobs: the run sees whatever devices the machine has (CUDA_VISIBLE_DEVICES as it is).
set -uo pipefail
lock_dir=$1 log=$3
IFS=, read -ra gpus <<<"$2"
shift 3
mkdir -p "$lock_dir" "$(dirname "$log")"

declare -A repeat=()  # the n-th time an id is listed: its lock file gpu-<id>.<n>.lock
while :; do
    for gpu in "${gpus[@]}"; do
        n=${repeat[$gpu]:-0}
        repeat[$gpu]=$((n + 1))
        exec 9>>"$lock_dir/gpu-${gpu//\//_}.$n.lock"  # a MIG id holds slashes
        if flock --nonblock 9; then
            break 2
        fi
    done
    repeat=()
    sleep 1
done

if [[ $gpu == cpu ]]; then
    where="slot $((n + 1))" seen="a --jobs slot"
else
    export CUDA_VISIBLE_DEVICES=$gpu
    where="GPU $gpu" seen="CUDA_VISIBLE_DEVICES=$gpu"
fi
# torch starts a thread per core in every run; runs side by side would fight over the cores
threads=$(($(nproc) / ${#gpus[@]}))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$((threads > 0 ? threads : 1))}
name=${log%.log}
echo "$where: started $name"
# the pid: scripts/submit.py --status tells a run that runs from one that was killed with make
{ echo "# $(date '+%F %T') pid $$ on $(hostname), $seen"; echo "$*"; } >>"$log"
start=$SECONDS
"$@" >>"$log" 2>&1 9>&-  # the lock stays with this script: a run's leftover children cannot keep it
status=$?
echo "# $(date '+%F %T') exit status $status" >>"$log"
if ((status == 0)); then
    took=$((SECONDS - start))
    if ((took < 120)); then took="$took s"; else took="$((took / 60)) min"; fi
    echo "$where: finished $name ($took)"
else
    echo "$where: FAILED (exit status $status) $name: see $log"
fi
exit "$status"
