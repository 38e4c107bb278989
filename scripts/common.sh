# Shared by the *_table.sh scripts (sourced, not run): their arguments, and the one run pattern.
#
#   usage: bash scripts/<name>_table.sh DATA_PATH OUT_DIR [--dry-run]
#
# Every command is printed before it runs; --dry-run only prints them (paste them into a
# cluster's job files: they run from the repository root, which the first line cd's into).
# A run whose folder already holds summary.json (written last) is skipped, so a table
# script can simply be started again after an interruption.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
read -ra PY <<<"${PYTHON:-python}"  # an array: PYTHON="python -u" works too

usage() {  # the calling script's opening comment block
    sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"
}

absolute() {  # the printed commands run from the repository root: no relative paths in them
    if [[ $1 == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi
}

parse_args() {  # sets DATA, OUT and DRY_RUN
    local positional=() arg
    DRY_RUN=0
    for arg in "$@"; do
        case $arg in
            --dry-run) DRY_RUN=1 ;;
            -h | --help) usage; exit 0 ;;
            -*) echo "error: unknown option $arg (see $0 --help)" >&2; exit 2 ;;
            *) positional+=("$arg") ;;
        esac
    done
    if [[ ${#positional[@]} -ne 2 ]]; then
        echo "error: expected DATA_PATH and OUT_DIR (see $0 --help)" >&2
        exit 2
    fi
    DATA=$(absolute "${positional[0]}")
    OUT=$(absolute "${positional[1]}")
    echo "cd $(printf '%q' "$ROOT")"
    cd "$ROOT"
}

# run SCRIPT DIR FLAGS...: print `python SCRIPT --dir=DIR FLAGS...`; run it unless --dry-run
# or DIR/summary.json says it is done.
run() {
    local script=$1 dir=$2
    shift 2
    local command=("${PY[@]}" "$script" "--dir=$dir" "$@")
    if [[ $DRY_RUN == 0 && -f $dir/summary.json ]]; then
        echo "# done, skipped: $dir"
        return
    fi
    local line
    line=$(printf '%q ' "${command[@]}")
    echo "${line% }"
    if [[ $DRY_RUN == 0 ]]; then
        "${command[@]}"
    fi
}
