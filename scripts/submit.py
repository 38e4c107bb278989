"""Run a table's runs at once: on the GPUs of one machine (make -j, one run per GPU), N at a time on
this machine's cores (--jobs N), or on SLURM (one sbatch job per run, afterok dependencies,
requeued when a run checkpoints on a signal).

    bash scripts/swa_table.sh data runs/tables --gpus 0,1,2,3
    bash scripts/demo.sh --jobs 2                          (two runs at a time, one thread each on 2 cores)
    bash scripts/swa_table.sh data runs/tables --slurm --partition gpu --time 24:00:00
    bash scripts/swa_table.sh data runs/tables --dry-run | python3 scripts/submit.py --slurm --dry-run
    bash scripts/swa_table.sh data runs/tables --status     (where every run stands: scripts/status.py)

The table scripts call this with their --gpus/--slurm options. It reads on stdin the run list
that a table script's --dry-run prints: a `cd` line (the folder the commands run in), then one
command per line; blank lines and lines starting with # are ignored.

Dependencies come from the commands themselves: a run waits for the earlier runs whose folders
(--dir) a value of its flags points into (--ckpt=.../endpoint-1/checkpoint-200.pt waits for
endpoint-1), and a command without --dir (the demo's report) waits for every run before it.
A run whose folder holds summary.json is finished: it is skipped, and nothing waits for it; so
is a run without a folder whose log says it ended well after the runs it waits for.
Each run's output goes to a log beside its folder, <dir>.log. --status prints where each run
stands (done, running, queued, waiting for which runs, failed with its error, never started
because a run it needs failed), from the folders, the logs and SLURM's queue, and what to type to
go on: the command that submitted the table (recorded beside its runs, in submitted.sh).
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys

import status

HERE = os.path.dirname(os.path.abspath(__file__))
WITH_GPU = os.path.join(HERE, "with_gpu.sh")  # a Makefile recipe: take a free GPU, run, log
SLURM_JOB = os.path.join(HERE, "slurm_job.sh")  # the batch script: forward signals, requeue on 75


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one `error:` line and exit 2, as every script here
        fail(f"{message} (see --help)")


def fail(message: str, status: int = 2):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="submit.py", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--gpus", help="GPU ids of this machine, e.g. 0,1,2,3: one run on each at a time "
                       "(repeat an id to run two at once on it)")
    where.add_argument("--jobs", type=int, metavar="N", help="N runs at a time on this machine, whatever its "
                       "devices, each with the cores' threads shared out (cores / N)")
    where.add_argument("--slurm", action="store_true", help="submit each run as its own SLURM job")
    parser.add_argument("--status", action="store_true",
                        help="print where every run stands and what to type to go on; run nothing (SLURM's "
                             "queue is read where squeue is installed; with --slurm it must answer)")
    parser.add_argument("--dry-run", "--dry_run", action="store_true",
                        help="print the Makefile (--gpus) or the sbatch commands (--slurm); run nothing")
    parser.add_argument("--command", help="the command that started this (the table script's), recorded "
                        f"beside the runs ({status.COMMAND_RECORD}) for --status to show")
    parser.add_argument("--names_from", "--names-from", metavar="DIR",
                        help="runs are named by their folders' paths under DIR, e.g. CIFAR100/VGG16/fge-run1 "
                             "(default: the folder that holds them all)")
    slurm = parser.add_argument_group("SLURM (with --slurm)")
    slurm.add_argument("--partition", help="the partition (default: the cluster's default)")
    slurm.add_argument("--time", help="the time limit of each job: MM, HH:MM:SS or D-HH:MM:SS "
                       "(default: the partition's); a run stopped by it is requeued and continues")
    slurm.add_argument("--gpus_per_job", "--gpus-per-job", type=int, default=1,
                       help="GPUs of each job (--gres; default: 1)")
    slurm.add_argument("--sbatch_args", "--sbatch-args", default="", help='more sbatch options, e.g. "--qos=high"')
    slurm.add_argument("--signal_seconds", "--signal-seconds", type=int, default=120,
                       help="SIGUSR1 this long before the time limit: the run checkpoints and the job "
                       "requeues (default: 120)")
    return parser


# --------------------------------------------------------------------------- the run list

class Run:
    """One command of the list: its words, folder (None for a report), log and the runs it waits for."""

    def __init__(self, number: int, words: list[str], cwd: str):
        self.number, self.words = number, words
        dirs = [w[len("--dir="):] for w in words if w.startswith("--dir=")]
        self.dir = os.path.normpath(os.path.join(cwd, dirs[0])) if dirs else None
        self.paths = [os.path.normpath(os.path.join(cwd, w.split("=", 1)[-1])) for w in words[1:]
                      if not w.startswith("--dir=")]  # every value and word: the ones inside a run count
        self.after: list[Run] = []  # those of them not finished, once ``pending`` has looked
        self.needs: list[Run] = []  # the runs it reads
        self.name = self.log = ""

    @property
    def finished(self) -> bool:
        if self.dir is None:  # the demo's report: its log says it ended well, after what it reads
            return status.finished_without_folder(status.Log(self.log), self.needs)
        return os.path.exists(os.path.join(self.dir, "summary.json"))


def read_runs(lines: list[str], names_from: str | None = None) -> tuple[str, list[Run], str]:
    """The working folder and the runs of a dry run's output, with their dependencies, and the folder
    their names start from; each run named by its folder's path under ``names_from`` (default: the
    folder that holds them all)."""
    cwd, runs = os.getcwd(), []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            fail(f"cannot read the command {line!r}: {exc}")
        if words[0] == "cd" and len(words) == 2:
            cwd = os.path.join(cwd, words[1])
            continue
        run = Run(len(runs) + 1, words, cwd)
        if run.dir and any(r.dir == run.dir for r in runs):
            fail(f"two commands write to {run.dir}")
        if run.dir is None:
            run.after = list(runs)
        else:
            run.after = [r for r in runs if r.dir and any(p == r.dir or p.startswith(r.dir + os.sep)
                                                          for p in run.paths)]
        run.needs = list(run.after)
        runs.append(run)
    if not runs:
        fail("no commands on stdin (pipe in a table script's --dry-run output)")
    # names relative to the runs' common parent (curves/CIFAR10/VGG16/endpoint-1); logs beside the folders
    parent = os.path.commonpath([os.path.dirname(r.dir) for r in runs if r.dir] or [cwd])
    if names_from:
        parent = os.path.normpath(os.path.join(cwd, names_from))
    for run in runs:
        script = next((w for w in run.words if w.endswith(".py")), run.words[0])
        path = run.dir or os.path.join(parent, os.path.splitext(os.path.basename(script))[0])
        run.name, run.log = os.path.relpath(path, parent), path + ".log"
    return cwd, runs, parent


def pending(runs: list[Run]) -> list[Run]:
    """The runs still to do; print the finished ones. Nothing waits for a finished run."""
    todo = []
    for run in runs:
        if run.finished:
            print(f"# done, skipped: {run.dir or run.log}")
        else:
            run.after = [r for r in run.after if not r.finished]
            todo.append(run)
    return todo


# --------------------------------------------------------------------------- many GPUs: make -j

GPU_ID = re.compile(r"\d+|(GPU|MIG)-[\w/-]+")  # CUDA_VISIBLE_DEVICES takes indices or UUIDs


CPU_SLOT = "cpu"  # with_gpu.sh's id of a --jobs slot: the run sees every device, and no CUDA_VISIBLE_DEVICES


def makefile(cwd: str, runs: list[Run], gpus: str, lock_dir: str, option: str) -> str:
    """One phony target per run, its prerequisites the runs it waits for.

    make is the standard tool that runs a dependency graph N jobs at a time (-j) and carries on
    past a failure with whatever does not depend on it (-k); xargs -P and GNU parallel know no
    dependencies. Targets are phony names rather than the runs' summary.json files: whether a
    run is finished was decided above, so no file timestamp can ever make make redo a run, and
    paths with spaces or colons, which make targets cannot hold, stay in the recipes only."""
    def recipe_word(word: str) -> str:
        return shlex.quote(word).replace("$", "$$")  # make expands $ before the shell sees it

    # `all` lists the runs by depth (0: waits for none; else one more than the deepest it waits for),
    # in the list's order within a depth: make -j starts them in this order as slots free up, and
    # defers one whose runs are not done to its next pass over the list, after all the others.
    # Listed as they come, the demo's second part (independent runs) went before its first part's
    # curve, whose plane then ran last with a slot idle: `make demo` took 296 s on 2 cores, 264 s
    # in this order (docs/speed.md).
    depth: dict[int, int] = {}
    for run in runs:  # a run comes after the runs it waits for
        depth[run.number] = 1 + max((depth[r.number] for r in run.after), default=-1)
    names = " ".join(f"run-{r.number}" for r in sorted(runs, key=lambda r: depth[r.number]))
    text = [f"# scripts/submit.py {option}: make -f THIS -j <slots> -k", f".PHONY: all {names}", f"all: {names}"]
    for run in runs:
        words = ["cd", cwd, "&&", WITH_GPU, lock_dir, gpus, run.log, *run.words]
        recipe = " ".join(w if w == "&&" else recipe_word(w) for w in words)
        text += ["", f"run-{run.number}:" + "".join(f" run-{r.number}" for r in run.after), f"\t@{recipe}"]
    return "\n".join(text) + "\n"


def check_here(args) -> None:
    """--gpus and --jobs take none of --slurm's options."""
    defaults = build_parser().parse_args(["--slurm"])
    given = [name for name in ("partition", "time", "gpus_per_job", "sbatch_args", "signal_seconds")
             if getattr(args, name) != getattr(defaults, name)]
    if given:
        fail(f"--{given[0]} is an option of --slurm, not of {'--gpus' if args.gpus is not None else '--jobs'}")


def slots(args) -> tuple[list[str], str]:
    """The slots that make -j fills (GPU ids, or --jobs' CPU slots), and the option that asked for them."""
    if args.jobs is not None:
        if args.jobs < 1:
            fail(f"--jobs takes a number of runs at a time, 1 or more (got {args.jobs})")
        return [CPU_SLOT] * args.jobs, f"--jobs {args.jobs}"
    gpus = args.gpus.split(",")
    if not args.gpus or not all(GPU_ID.fullmatch(g) for g in gpus):
        fail(f"--gpus takes GPU ids separated by commas, e.g. 0,1,2,3 (got {args.gpus!r})")
    return gpus, f"--gpus {args.gpus}"


def run_here(args, cwd: str, runs: list[Run], parent: str) -> int:
    """--gpus and --jobs: the runs on this machine, as many at a time as there are slots (make -j)."""
    gpus, option = slots(args)
    for tool in ("make", "flock"):
        if shutil.which(tool) is None:
            fail(f"{option.split()[0]} needs `{tool}`, which is not installed")
    lock_dir = os.environ.get("GPU_LOCK_DIR") or os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                               f"gpu-locks-{os.getuid()}")
    record_command(args, parent)
    todo = pending(runs)
    text = makefile(cwd, todo, ",".join(gpus), lock_dir, option)
    if args.dry_run:
        print(text, end="")
        return 0
    if not todo:
        print("# every run is finished")
        return 0
    if args.jobs is None:
        where = f"GPUs {args.gpus}"
    else:  # with_gpu.sh's share of the cores (nproc: the ones this process may use)
        threads = os.environ.get("OMP_NUM_THREADS") or max(1, len(os.sched_getaffinity(0)) // args.jobs)
        where = f"this machine, {threads} thread{'s' * (str(threads) != '1')} each"
    print(f"# {len(todo)} runs, {len(gpus)} at a time on {where}; each one's output in <its folder>.log", flush=True)
    make = subprocess.run(["make", "--no-print-directory", "-f", "-", "-k", f"-j{len(gpus)}", "all"], input=text,
                          text=True)
    if make.returncode != 0:
        unfinished = [r.dir for r in todo if r.dir and not r.finished]
        fail(f"{len(unfinished)} runs did not finish (failed, or waiting for one that failed): "
             f"{' '.join(unfinished)}; see their logs, and start the same command again to go on", 1)
    return 0


# --------------------------------------------------------------------------- SLURM: sbatch

def seconds(limit: str) -> int | None:
    """SLURM's time formats (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) in seconds."""
    if limit.upper() in ("INFINITE", "UNLIMITED"):
        return None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", limit)
    if not match:
        fail(f"--time takes SLURM's formats, e.g. 90 (minutes), 12:00:00 or 2-00:00:00 (got {limit!r})")
    days, *rest = match.groups()
    parts = [int(p) for p in rest if p is not None]
    if days is None:  # M, M:S, H:M:S
        units = {1: [60], 2: [60, 1], 3: [3600, 60, 1]}[len(parts)]
        return sum(u * p for u, p in zip(units, parts))
    return int(days) * 86400 + sum(u * p for u, p in zip([3600, 60, 1], parts))


def check_slurm(args) -> None:
    """Bad input is an error before anything is submitted; a dry run needs no cluster."""
    if args.gpus_per_job < 0:
        fail("--gpus_per_job must be 0 or more")
    if args.signal_seconds < 1:
        fail("--signal_seconds must be at least 1")
    if args.time is not None:
        limit = seconds(args.time)
        if limit is not None and args.signal_seconds >= limit:
            fail(f"--signal_seconds {args.signal_seconds} must be less than the time limit ({args.time})")
    try:
        shlex.split(args.sbatch_args)
    except ValueError as exc:
        fail(f"--sbatch_args: {exc}")
    if args.dry_run:
        return
    for tool in ("sbatch", "squeue", "scontrol"):
        if shutil.which(tool) is None:
            fail(f"--slurm needs `{tool}` (SLURM's client commands), which is not installed")
    if args.partition:
        result = slurm_command("scontrol", "show", "partition", args.partition)
        if result.returncode != 0:
            if "not found" in result.stdout + result.stderr:
                fail(f"unknown SLURM partition {args.partition!r} (sinfo lists the partitions)")
            unreachable(result)


def slurm_command(*command: str) -> subprocess.CompletedProcess:
    """A SLURM client command's answer; one that gives none (a controller that does not answer, for
    as long as SLURM's clients retry) is an error."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        fail(f"cannot reach SLURM: `{' '.join(command[:2])}` gave no answer in 90 s (is slurmctld up? SLURM_CONF?)")


def unreachable(result: subprocess.CompletedProcess) -> None:
    fail(f"cannot reach SLURM: {status.one_line(result.stderr or result.stdout)} (is slurmctld up? SLURM_CONF?); "
         "nothing was submitted")


def queued_jobs() -> dict[str, str]:
    """{run folder: job id} of this user's jobs still queued or running (their --comment)."""
    result = slurm_command("squeue", "--me", "--noheader", "--format=%i %k")
    if result.returncode != 0:
        unreachable(result)
    return {comment: job for job, _, comment in (line.partition(" ") for line in result.stdout.splitlines())}


def sbatch_command(args, cwd: str, run: Run, after: list[str]) -> list[str]:
    # %% in a log path: sbatch would read %j and the like in it
    command = ["sbatch", "--parsable", f"--job-name={run.name}", f"--comment={run.dir or run.log[:-4]}",
               f"--chdir={cwd}", f"--output={run.log.replace('%', '%%')}", "--open-mode=append",
               "--requeue", f"--signal=B:USR1@{args.signal_seconds}", "--kill-on-invalid-dep=yes"]
    if args.partition:
        command.append(f"--partition={args.partition}")
    if args.time:
        command.append(f"--time={args.time}")
    if args.gpus_per_job:
        command.append(f"--gres=gpu:{args.gpus_per_job}")
    if after:
        command.append("--dependency=afterok:" + ":".join(after))
    return [*command, *shlex.split(args.sbatch_args), SLURM_JOB, *run.words]


def submit(args, cwd: str, runs: list[Run], parent: str) -> int:
    check_slurm(args)
    record_command(args, parent)
    todo = pending(runs)
    if args.dry_run:  # a shell script: each job's id in $JOB_<n>, for the jobs that wait for it
        print(f"cd {shlex.quote(cwd)}")
        for run in todo:
            words = sbatch_command(args, cwd, run, [f"JOB_{r.number}" for r in run.after])
            line = " ".join(re.sub(r"JOB_(\d+)", r"${JOB_\1}", w) if w.startswith("--dependency=")
                            else shlex.quote(w) for w in words)
            print(f"JOB_{run.number}=$({line})")
        return 0
    queued, job_ids, submitted = queued_jobs(), {}, []
    for run in todo:
        key = run.dir or run.log[:-4]
        if key in queued:  # started again while its job waits or runs: wait for that job, add none
            job_ids[run.number] = queued[key]
            print(f"# already queued: job {queued[key]} {run.name}")
            continue
        os.makedirs(os.path.dirname(run.log), exist_ok=True)  # SLURM opens the log before the job starts
        command = sbatch_command(args, cwd, run, [job_ids[r.number] for r in run.after])
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            fail(f"sbatch refused {run.name}: {result.stderr.strip()}; "
                 f"{len(submitted)} jobs were submitted before it ({' '.join(submitted) or 'none'}); "
                 "start the same command again to submit the rest", 1)
        job_ids[run.number] = result.stdout.strip().split(";")[0]
        submitted.append(job_ids[run.number])
        after = f" after {','.join(job_ids[r.number] for r in run.after)}" if run.after else ""
        print(f"job {job_ids[run.number]}: {run.name}{after} (log {run.log})")
    print(f"# {len(submitted)} jobs submitted; watch them with `squeue --me`, and the logs beside the run folders")
    return 0


def joined(argv: list[str]) -> list[str]:
    """``--sbatch_args VALUE`` as ``--sbatch_args=VALUE``: argparse would take a VALUE that starts
    with -- ("--cpus-per-task=2") for an option of its own."""
    out, words = [], iter(argv)
    for word in words:
        if word in ("--sbatch_args", "--sbatch-args"):
            word = f"{word}={next(words, '')}"
        out.append(word)
    return out


def record_command(args, folder: str) -> None:
    """The command that submitted the runs, beside them, for --status to say what to type to go on."""
    if not args.command or args.dry_run:
        return
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, status.COMMAND_RECORD), "w") as f:
        f.write(f"#!/bin/sh\n# the command that submitted the runs here (scripts/submit.py)\n{args.command}\n")


def show_status(args, cwd: str, runs: list[Run], parent: str) -> int:
    if args.dry_run:
        fail("--status prints where the runs stand: --dry-run has nothing to add")
    if args.slurm and shutil.which("squeue") is None:
        fail("--slurm needs `squeue` (SLURM's client commands), which is not installed")
    use_queue = args.gpus is None and args.jobs is None and shutil.which("squeue") is not None
    jobs, why = status.queue() if use_queue else ({}, None)
    if args.slurm and why:
        fail(f"cannot reach SLURM: {why} (is slurmctld up? SLURM_CONF?)")
    typed = re.sub(r" --status\b", "", args.command or "") or None  # without a record: what was typed, less --status
    print("\n".join(status.board(runs, jobs, why if use_queue else None, use_queue, parent, typed)))
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(joined(sys.argv[1:] if argv is None else argv))
    if not (args.gpus is not None or args.jobs is not None or args.slurm or args.status):
        fail("say where the runs go: --gpus LIST, --jobs N or --slurm (or --status: where they stand)")
    if args.gpus is not None or args.jobs is not None:
        check_here(args)
    cwd, runs, parent = read_runs(sys.stdin.read().splitlines(), args.names_from)
    if args.status:
        return show_status(args, cwd, runs, parent)
    return submit(args, cwd, runs, parent) if args.slurm else run_here(args, cwd, runs, parent)


if __name__ == "__main__":
    sys.exit(main())
