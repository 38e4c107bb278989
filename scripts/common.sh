# Shared by the *_table.sh scripts and demo.sh (sourced, not run): their options, and the one run pattern.
#
#   usage: bash scripts/<name>_table.sh DATA_PATH OUT_DIR [--dry-run] [--gpus LIST | --slurm [SLURM OPTIONS]]
#          bash scripts/<name>_table.sh DATA_PATH OUT_DIR --status
#
# Every command is printed before it runs; --dry-run only prints them, one per line after a `cd`
# to the repository root (they run from there). A run whose folder already holds summary.json
# (written last) is skipped, so a table script can simply be started again after an interruption.
# With --gpus, --jobs or --slurm that printed list goes to scripts/submit.py, which runs it at once
# wherever the runs' dependencies allow (make -j here, or sbatch jobs with afterok); with
# --status, submit.py says where each run stands and what to type to go on.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# the interpreter: $PYTHON, else the repository's .venv (make's), else python; an array: PYTHON="python -u" works
if [[ -z ${PYTHON:-} && -x $ROOT/.venv/bin/python ]]; then PYTHON=.venv/bin/python; fi
read -ra PY <<<"${PYTHON:-python}"

OPTIONS="\
Where the runs go (default: here, one after the other):
  --gpus LIST          on this machine's GPUs, e.g. --gpus 0,1,2,3: independent runs at once,
                       one per GPU (CUDA_VISIBLE_DEVICES); each run's output in <run folder>.log
  --jobs N             N independent runs at once on this machine, whatever its devices, the cores
                       shared out (2 cores, --jobs 2: a thread each); each run's output in its log
  --slurm              one SLURM job per run (sbatch), started when the runs it needs are done;
                       requeued to continue when it nears its time limit; log <run folder>.log
    --partition P      --time HH:MM:SS      --gpus_per_job N (default 1)
    --sbatch_args \"...\" (more sbatch options)      --signal_seconds S (SIGUSR1 S s before the limit; 120)
  --dry-run            print the commands (with --gpus: the Makefile; with --slurm: the sbatch lines)
  --status             where every run stands (done, running, queued, waiting for which run, failed
                       and why, never started because a run it needs failed), and what to type to go on"
# the options that take a value, for scripts/submit.py (hyphens or underscores)
VALUED='gpus|jobs|partition|time|gpus[-_]per[-_]job|sbatch[-_]args|signal[-_]seconds'

usage() {  # the calling script's opening comment block, then the options above
    sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"
    echo; echo "$OPTIONS"
}

fail() {  # a usage mistake: one error line, exit status 2
    echo "error: $1 (see $0 --help)" >&2
    exit 2
}

absolute() {  # the printed commands run from the repository root: no relative paths in them
    if [[ $1 == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi
}

parse_options() {  # sets POSITIONAL, DRY_RUN, SUBMIT (the options for scripts/submit.py), JOBS, HERE and LOCAL
    POSITIONAL=() SUBMIT=() DRY_RUN=0 JOBS="" STATUS=0
    while (($#)); do
        case $1 in
            --dry-run) DRY_RUN=1 ;;
            --jobs=*) JOBS=${1#*=}; SUBMIT+=("$1") ;;
            --jobs) (($# > 1)) || fail "$1 needs a value"; JOBS=$2; SUBMIT+=("$1=$2"); shift ;;
            --status) STATUS=1; SUBMIT+=("$1") ;;
            --slurm) SUBMIT+=("$1") ;;
            -h | --help) usage; exit 0 ;;
            --*=*) [[ ${1%%=*} =~ ^--($VALUED)$ ]] || fail "unknown option ${1%%=*}"; SUBMIT+=("$1") ;;
            --*)
                [[ $1 =~ ^--($VALUED)$ ]] || fail "unknown option $1"
                (($# > 1)) || fail "$1 needs a value"
                SUBMIT+=("$1=$2")
                shift ;;
            -?*) fail "unknown option $1" ;;
            *) POSITIONAL+=("$1") ;;
        esac
        shift
    done
    HERE=$((!DRY_RUN && !${#SUBMIT[@]}))  # 1: the commands run here, one after the other
    LOCAL=$((HERE || (${#JOBS} && !DRY_RUN && !STATUS)))  # 1: they run on this machine now (or --jobs N at a time)
}

parse_args() {  # the table scripts': DATA_PATH OUT_DIR and the options; sets DATA and OUT (a table script then
    # sets NAMES_FROM=$OUT/<table>, so that its runs are named <dataset>/<model>/<run>)
    parse_options "$@"
    [[ ${#POSITIONAL[@]} == 2 ]] || fail "expected DATA_PATH and OUT_DIR"
    DATA=$(absolute "${POSITIONAL[0]}")
    OUT=$(absolute "${POSITIONAL[1]}")
    say "cd $(quote "$ROOT")"
    cd "$ROOT"
}

parse_study_args() {  # the study scripts' (one OUT_DIR; the data from --data_path, default the repository's
    # data/, else the places data.py looks): parse_study_args NAME DEFAULT "$@" also takes their own option
    # --NAME VALUE, into OPTION (default DEFAULT); sets POSITIONAL, DRY_RUN, SUBMIT and HERE (parse_options),
    # OUT and DATA
    local name=$1 args=()
    OPTION=$2 DATA=""
    shift 2
    while (($#)); do
        case $1 in
            --"$name"=*) OPTION=${1#*=} ;;
            --"$name") (($# > 1)) || fail "--$name needs a value"; OPTION=$2; shift ;;
            --data_path=* | --data-path=*) DATA=${1#*=} ;;
            --data_path | --data-path) (($# > 1)) || fail "$1 needs a value"; DATA=$2; shift ;;
            *) args+=("$1") ;;
        esac
        shift
    done
    parse_options ${args[@]+"${args[@]}"}
    [[ ${#POSITIONAL[@]} == 1 ]] || fail "expected OUT_DIR"
    OUT=$(absolute "${POSITIONAL[0]}")
    DATA=$(absolute "${DATA:-$ROOT/data}")
}

quote() {  # words -> one line that a shell, and Python's shlex.split, read back as these words
    local word out=()
    for word; do
        if [[ $word =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then out+=("$word"); else out+=("'${word//\'/\'\\\'\'}'"); fi
    done
    echo "${out[*]}"
}

# the command as typed (this is sourced, so "$@" is the table script's), for --status to say what to type to go on
INVOCATION="$(quote cd "$PWD") && ${PYTHON:+PYTHON=$(quote "$PYTHON") }$(quote bash "$0" "$@")"

LIST=()  # with --gpus or --slurm: the lines a dry run prints, for scripts/submit.py
say() {
    if ((${#SUBMIT[@]})); then LIST+=("$1"); else echo "$1"; fi
}

# step WORDS...: print a command; run it unless it is only printed or handed to scripts/submit.py
step() {
    say "$(quote "$@")"
    if ((HERE)); then "$@"; fi
}

# run SCRIPT DIR FLAGS...: step `python SCRIPT --dir=DIR FLAGS...`, unless DIR/summary.json says it
# is done (submit.py looks at that itself).
run() {
    local script=$1 dir=$2
    shift 2
    if ((HERE)) && [[ -f $dir/summary.json ]]; then
        say "# done, skipped: $dir"
        return
    fi
    step "${PY[@]}" "$script" "--dir=$dir" "$@"
}

# finish: the last line of a script. With --gpus or --slurm, scripts/submit.py runs the list.
finish() {
    if ((${#SUBMIT[@]})); then
        if ((DRY_RUN)); then SUBMIT+=(--dry-run); fi
        if [[ -n ${NAMES_FROM:-} ]]; then SUBMIT+=("--names_from=$NAMES_FROM"); fi  # a table's OUT_DIR/<table>
        SUBMIT+=("--command=$INVOCATION")
        python3 "$ROOT/scripts/submit.py" "${SUBMIT[@]}" <<<"$(printf '%s\n' "${LIST[@]}")"
    fi
}
