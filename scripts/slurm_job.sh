#!/usr/bin/env bash
# The batch script of every job that scripts/submit.py sends to SLURM:  slurm_job.sh COMMAND...
received=()  # first of all: a signal from now on is remembered (and passed on below), not fatal
trap 'received+=(USR1)' USR1
trap 'received+=(TERM)' TERM
#
# Runs COMMAND (one run of a table) and passes SIGUSR1 and SIGTERM on to it: sbatch's
# --signal=B:USR1@SECONDS sends SIGUSR1 to this shell alone, shortly before the time limit, and a
# preempting or cancelling SLURM sends SIGTERM. A training run (or a point by point evaluation)
# so signalled finishes its step, writes a checkpoint and exits 75 (EX_TEMPFAIL, "requeue me");
# an evaluation with nothing to save exits 75 at once on SIGTERM and ignores SIGUSR1, using its
# last minutes; any of our scripts still starting exits 75 at once (runtime/signals.py). On 75,
# or on any failure after a signal, this job puts itself
# back in the queue (sbatch --requeue allows it); the requeued job runs the same command again,
# which continues from the run's latest checkpoint; jobs that depend on it (afterok) keep waiting.
# Not when SLURM itself is ending the job (scancel, the time limit reached): a requeue would undo
# a cancel. When SLURM requeues the job itself (scontrol requeue, a preemption), it says so.
#
# A signal is passed on once the run catches it (/proc/PID/status, SigCgt): our scripts do from
# their first ~0.1 s (runtime/signals.py), and one sent before would kill the Python starting up.
# A command that never catches it gets it after WAIT_FOR_HANDLER seconds, as it is.
#
# The log's closing lines come first, before anything that may be slow (scontrol, under load),
# so that SLURM's SIGKILL after KillWait cannot leave the log without them.
WAIT_FOR_HANDLER=5

# torch would start a thread per core of the node, and the jobs sharing the node would fight over
# them; torchrun's workers share the job's CPUs
cpus=${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-1}}
workers=1
if [[ $(basename "$1") == torchrun ]]; then
    for ((i = 2; i <= $#; i++)); do
        word=${!i} next=$((i + 1))
        case $word in
            --nproc[-_]per[-_]node=*) workers=${word#*=} ;;
            --nproc[-_]per[-_]node) workers=${!next-1} ;;
        esac
    done
    if [[ $workers == gpu ]]; then
        IFS=, read -ra visible <<<"${CUDA_VISIBLE_DEVICES-}"
        workers=${#visible[@]}
    fi
    [[ $workers =~ ^[1-9][0-9]*$ ]] || workers=1
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$((cpus / workers > 0 ? cpus / workers : 1))}
printf '# %(%F %T)T job %s on %s, start %d, OMP_NUM_THREADS=%s, CUDA_VISIBLE_DEVICES=%s\n' -1 \
    "${SLURM_JOB_ID:-?}" "$(hostname)" $((${SLURM_RESTART_COUNT:-0} + 1)) "$OMP_NUM_THREADS" "${CUDA_VISIBLE_DEVICES-}"
echo "$*"

# torchrun passes SIGTERM on to its workers but dies of SIGUSR1: it gets SIGTERM for both (the
# training scripts treat them alike). It exits 1, not 75, when its workers stop for a requeue, so
# a run that a signal stopped counts as checkpointed when it exits non-zero.
as_warning=USR1
[[ $(basename "$1") == torchrun ]] && as_warning=TERM

catches() {  # catches PID SIGNAL: whether the process has a handler for the signal (or is gone)
    local mask
    mask=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null) || return 0
    [[ -n $mask ]] || return 0
    (((16#$mask >> ($(kill -l "$2") - 1)) & 1))
}

forwarded=0
pass_on() {  # the signals received so far, to the run, each once the run catches it
    local sig tries
    while ((forwarded < ${#received[@]})); do
        sig=${received[forwarded]}
        forwarded=$((forwarded + 1))
        [[ $sig == USR1 ]] && sig=$as_warning
        for ((tries = 0; tries < WAIT_FOR_HANDLER * 20; tries++)); do
            catches "$child" "$sig" && break
            kill -0 "$child" 2>/dev/null || return
            sleep 0.05
        done
        kill -"$sig" "$child" 2>/dev/null
    done
}

"$@" &  # in the background: bash runs a trap only between commands, and `wait` is one it can leave
child=$!
while :; do
    pass_on
    wait "$child"
    status=$?
    # a trapped signal ends `wait` early, with a status over 128, while the run goes on
    ((status > 128)) || break
    if ! kill -0 "$child" 2>/dev/null; then
        # the run ended meanwhile (SLURM signals every process of the job: a run saves and exits 75
        # at once): its own exit status, which bash kept, not the signal's 128 + N
        wait "$child"
        status=$?
        break
    fi
done

if ((status == 0)); then
    what="finished"
elif ((status == 75)); then
    what="stopped to be continued (EX_TEMPFAIL): the same command goes on where the run stood"
elif ((status > 128)); then
    what="killed by SIG$(kill -l $((status - 128)) 2>/dev/null || echo "NAL $((status - 128))")"
else
    what="failed"
fi
((${#received[@]})) && what+=", after SIG${received[*]} reached this job"
printf '# %(%F %T)T exit status %d: %s\n' -1 "$status" "$what"
if ((status == 75 || (${#received[@]} && status != 0))); then
    if ! job=$(scontrol show job "$SLURM_JOB_ID" --oneliner 2>&1); then
        echo "# not requeued: scontrol cannot tell this job's state ($job); start the table's command again to continue"
    elif [[ $job == *JobState=RUNNING* ]]; then
        if message=$(scontrol requeue "$SLURM_JOB_ID" 2>&1); then
            echo "# requeued: job $SLURM_JOB_ID is back in the queue, and continues the run when it starts again"
        else
            echo "# not requeued: scontrol requeue says $message; start the table's command again to continue"
        fi
    elif [[ $job =~ Restarts=([0-9]+) ]] && ((BASH_REMATCH[1] > ${SLURM_RESTART_COUNT:-0})); then
        echo "# SLURM requeues this job itself (scontrol requeue, or a preemption): it continues the run when it starts again"
    else
        state=$(grep -o 'JobState=[A-Z_]*' <<<"$job")
        echo "# not requeued: SLURM is ending this job ($state: scancel, or its time limit); start the table's" \
            "command again to continue"
    fi
fi
exit "$status"
