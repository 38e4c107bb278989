#!/usr/bin/env bash
# The batch script of every job that scripts/submit.py sends to SLURM:  slurm_job.sh COMMAND...
#
# Runs COMMAND (one run of a table) and passes SIGUSR1 and SIGTERM on to it: sbatch's
# --signal=B:USR1@SECONDS sends SIGUSR1 to this shell alone, shortly before the time limit, and a
# preempting or cancelling SLURM sends SIGTERM. A run so signalled finishes its step, writes a
# checkpoint and exits 75 (EX_TEMPFAIL, "requeue me"); then this job puts itself back in the
# queue (sbatch --requeue allows it). The requeued job runs the same command again, which
# continues from the run's latest checkpoint; jobs that depend on it (afterok) keep waiting.
# Not when SLURM itself is ending the job (scancel, the time limit reached, preemption): the
# job is then no longer RUNNING, and a requeue would undo a cancel. A preempted job is requeued
# by SLURM where the cluster says so; otherwise starting the table's command again resubmits it.
# The signals go to the run as they are, whatever it is (a container or a wrapper passes them on);
# a script with nothing to checkpoint (an evaluation) should ignore SIGUSR1 and use its last minutes.
# torch would start a thread per core of the node, and the jobs sharing the node would fight over them
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-1}}}
echo "# $(date '+%F %T') job ${SLURM_JOB_ID:-?} on $(hostname), start $((${SLURM_RESTART_COUNT:-0} + 1))," \
    "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-}"
echo "$*"

# torchrun passes SIGTERM on to its workers but dies of SIGUSR1: it gets SIGTERM for both (the
# training scripts treat them alike). It exits 1, not 75, when its workers stop for a requeue, so
# a run that a signal stopped counts as checkpointed when it exits non-zero.
warning=USR1
[[ $(basename "$1") == torchrun ]] && warning=TERM
child= signalled=0
trap 'signalled=1; kill -$warning "$child" 2>/dev/null' USR1
trap 'signalled=1; kill -TERM "$child" 2>/dev/null' TERM
"$@" &  # in the background: bash runs a trap only between commands, and `wait` is one it can leave
child=$!
wait "$child"
status=$?
while ((status > 128)) && kill -0 "$child" 2>/dev/null; do  # a trapped signal ended `wait` early
    wait "$child"
    status=$?
done

echo "# $(date '+%F %T') exit status $status"
if ((status == 75 || (signalled && status != 0))); then
    state=$(scontrol show job "$SLURM_JOB_ID" --oneliner | grep -o 'JobState=[A-Z_]*')
    if [[ $state == JobState=RUNNING ]]; then
        echo "# checkpointed: back in the queue, to continue"
        scontrol requeue "$SLURM_JOB_ID"
    else
        echo "# checkpointed; not requeued: SLURM is ending the job ($state)"
    fi
fi
exit "$status"
