"""Where a table's runs stand, for scripts/submit.py --status: one line per run, from its folder
(summary.json: done), its log (<dir>.log: the job scripts' opening and closing lines, the last
error) and SLURM's queue (squeue: the jobs submit.py named by their runs' folders).

A run is done, running, queued, waiting for the runs it needs, stopped to be continued, failed
(with its log's last error line), or never started because a run it needs failed, was
cancelled or never ran; then what to type to go on: the same command again, which skips what
is done and submits (or runs) the rest. Standard library only, as submit.py.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess

STAMP = r"# \d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
# slurm_job.sh: "# DATE job ID on HOST, start K, ..."; with_gpu.sh: "# DATE pid PID on HOST, CUDA_VISIBLE_DEVICES=G"
# (or "..., a --jobs slot")
START = re.compile(STAMP + r" (?:job (?P<job>\S+) |pid (?P<pid>\d+) )?on (?P<host>[^,\s]+),(?: start (?P<start>\d+),)?"
                   r"(?:.*CUDA_VISIBLE_DEVICES=(?P<gpu>\S*))?")
END = re.compile(STAMP + r" exit status (?P<status>\d+)(?::\s*(?P<what>.*))?$")
VERDICT = re.compile(r"^# ((?:not )?requeued\b.*|SLURM requeues this job itself.*)$")
BLOCKING = ("failed", "cancelled", "never started", "stopped", "interrupted")  # a run that needs one waits in vain
COMMAND_RECORD = "submitted.sh"  # beside the runs: the command that submitted them, for "to continue"


class Log:
    """The last start recorded in a run's log: its opening line's fields, how it ended (None while
    it runs, or when it was killed before it could say), the job script's verdict, the last error."""

    def __init__(self, path: str):
        self.path, self.exists = path, os.path.isfile(path)
        self.start = self.end = self.verdict = self.error = None
        self.mtime = os.path.getmtime(path) if self.exists else 0.0
        if not self.exists:
            return
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
        last = max((i for i, line in enumerate(lines) if START.match(line)), default=None)
        section = lines[last:] if last is not None else lines
        self.start = START.match(section[0]) if last is not None else None
        said = []
        for line in section[2 if self.start else 0:]:  # the job scripts echo the command after their first line
            if END.match(line):
                self.end = END.match(line)
            elif VERDICT.match(line):
                self.verdict = VERDICT.match(line).group(1)
            elif line.strip() and not line.startswith("#") and self.end is None:
                said.append(line.strip())
        errors = [line for line in said if line.startswith("error:")]
        # a traceback's last line says what it was; a script's own error is its error: line
        self.error = errors[-1] if errors else (said[-1] if said and self.status not in (0, None) else None)

    @property
    def status(self) -> int | None:
        return int(self.end.group("status")) if self.end else None

    def field(self, name: str) -> str | None:
        return self.start.group(name) if self.start else None


def finished_without_folder(log: Log, needs: list) -> bool:
    """A run without a folder (the demo's report) is done when its last start exited 0 after every
    run it needs was done (their summary.json files are older than its log)."""
    return log.status == 0 and all(r.finished and os.path.getmtime(os.path.join(r.dir, "summary.json")) <= log.mtime
                                   for r in needs if r.dir)


def queue() -> tuple[dict[str, dict], str | None]:
    """{run folder (a job's --comment): its job's id, state and reason} of this user's jobs in SLURM's
    queue, and why the queue is unknown (None when it was read)."""
    try:
        result = subprocess.run(["squeue", "--me", "--noheader", "--format=%i %T %r %k"], capture_output=True,
                                text=True, timeout=60)
    except FileNotFoundError:
        return {}, "no SLURM here (squeue is not installed)"
    except subprocess.TimeoutExpired:
        return {}, "squeue gave no answer in 60 s"
    if result.returncode != 0:
        return {}, one_line(result.stderr or result.stdout)
    jobs = {}
    for line in result.stdout.splitlines():
        job, state, reason, comment = (line.split(" ", 3) + ["", "", ""])[:4]
        jobs[comment] = {"job": job, "state": state, "reason": reason}
    return jobs, None


def one_line(text: str) -> str:
    """The telling line of a SLURM command's complaint (its last), without the command's name."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or ["no message"]
    return re.sub(r"^\w+: (?:error: |fatal: )?", "", lines[-1])


def alive(log: Log) -> bool | None:
    """Whether the --gpus run of ``log`` still runs (its with_gpu.sh's pid on this host); None: unknown."""
    pid, host = log.field("pid"), log.field("host")
    if pid is None or host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def states(runs: list, jobs: dict[str, dict], queue_known: bool = True) -> dict[int, tuple[str, str]]:
    """{run number: (state, what to know)} for every run, in order (a run's needs come before it);
    ``jobs``: SLURM's queue (``queue``), ``queue_known``: whether it was read."""
    out: dict[int, tuple[str, str]] = {}
    for run in runs:
        log = Log(run.log)
        job = jobs.get(run.dir or run.log[:-4])
        needs = [r for r in run.after if out[r.number][0] != "done"]
        blocked = [r for r in needs if out[r.number][0] in BLOCKING]
        if run.finished or (run.dir is None and finished_without_folder(log, run.after)):
            out[run.number] = ("done", "summary.json" if run.dir else f"exit status 0 ({run.log})")
        elif job and job["state"] == "PENDING" and job["reason"].startswith("Dependency"):
            never = job["reason"] == "DependencyNeverSatisfied"
            out[run.number] = ("never started" if never else "waiting",
                               f"job {job['job']}, " + ("a run it needs failed: " if never else "for ")
                               + (", ".join(r.name for r in needs) or "the runs it needs"))
        elif job and job["state"] == "PENDING":
            again = f", start {int(log.field('start')) + 1}" if log.field("start") else ""
            out[run.number] = ("queued", f"job {job['job']}{again} ({job['reason']})")
        elif job:
            where = f" on {log.field('host')}, start {log.field('start')}" if log.field("job") == job["job"] else ""
            out[run.number] = ("running" if job["state"] == "RUNNING" else job["state"].lower(),
                               f"job {job['job']}{where}")
        elif log.start is not None and log.end is None:
            running = alive(log)
            if running or (running is None and not queue_known):
                where = (f"GPU {log.field('gpu')}, pid {log.field('pid')}" if log.field("pid") and log.field("gpu")
                         else f"pid {log.field('pid')}" if log.field("pid")
                         else f"job {log.field('job')} on {log.field('host')}, start {log.field('start')}")
                out[run.number] = ("running" if running else "running?", f"{where} ({run.log})")
            else:
                out[run.number] = ("interrupted", f"its log ends without an exit status: killed with its job? ({run.log})")
        elif log.status is not None:
            what = log.end.group("what") or ""
            if (log.verdict or "").startswith("not requeued: SLURM is ending"):
                ended = log.verdict[len("not requeued: "):].split(";")[0]
                out[run.number] = ("cancelled", f"{ended}, exit status {log.status} ({run.log})")
            elif log.status == 75 or (log.verdict or "").startswith("not requeued"):
                out[run.number] = ("stopped", f"exit status {log.status}, {log.verdict or what or 'saved where it stood'}"
                                   f", not in the queue ({run.log})")
            else:
                out[run.number] = ("failed", f"{log.error or what or 'no error line'} (exit status {log.status}; "
                                   f"{run.log})")
        elif blocked:
            out[run.number] = ("never started", "needs " + ", ".join(f"{r.name} ({out[r.number][0]})" for r in blocked))
        else:
            out[run.number] = ("not started", "waits for " + ", ".join(r.name for r in needs) if needs else "")
    return out


def board(runs: list, jobs: dict[str, dict], why: str | None, use_queue: bool, record_dir: str,
          typed: str | None = None) -> list[str]:
    """The status board's lines: a run a line, then the counts and what to type to go on. ``jobs``
    and ``why``: ``queue()``'s answer (``use_queue``: whether it was asked); ``typed``: the table's
    command as typed, for a table that no record says was submitted."""
    found = states(runs, jobs, use_queue and why is None)
    width = max(len(r.name) for r in runs)
    lines = []
    if why:
        lines.append(f"# SLURM's queue is unknown ({why}): runs in it show as their logs leave them")
    for run in runs:
        state, what = found[run.number]
        lines.append(f"{state:<14} {run.name:<{width}}  {what}".rstrip())
    counts: dict[str, int] = {}
    for state, _ in found.values():
        counts[state] = counts.get(state, 0) + 1
    lines.append("# " + ", ".join(f"{n} {state}" for state, n in counts.items()))
    if any(state not in ("done", "running", "queued", "waiting") for state, _ in found.values()):
        lines.append("# to go on (failed runs fixed first: see their logs), start the same command again: "
                     + submitted_command(record_dir, typed))
    elif counts.get("done", 0) == len(runs):
        lines.append("# every run is done")
    return lines


def submitted_command(record_dir: str, typed: str | None = None) -> str:
    """The command that submitted the table (scripts/submit.py records it), else the one typed."""
    path = os.path.join(record_dir, COMMAND_RECORD)
    if os.path.isfile(path):
        with open(path) as f:
            lines = [line for line in f.read().splitlines() if line and not line.startswith("#")]
        if lines:
            return lines[-1]
    return f"{typed or 'the table script'} with --slurm or --gpus as before"
