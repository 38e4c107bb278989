"""--slurm against a real SLURM: the daemons of tests/slurm_cluster.py, one node, started for
this module (about a second) and stopped after it. The quick demo as a small table (afterok
dependencies, several jobs at once, a log per run), a job requeued by a signal that continues
where it stopped, a cancel that stays a cancel, an unknown partition. Skipped, with the reason,
where SLURM cannot be started (not root, packages missing: .ci/run installs them)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

import slurm_cluster
from conftest import ROOT
from test_submit import assert_one_error_line, check_schedule, logging_python, read_events, waits

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = slurm_cluster.why_not()
    if reason:
        pytest.skip(reason)
    cluster = slurm_cluster.SlurmCluster(str(tmp_path_factory.mktemp("slurm")))
    cluster.start()
    yield cluster
    cluster.stop()


def submitted(stdout: str) -> dict[str, str]:
    """{job name: job id} from submit.py's `job ID: NAME ...` lines."""
    return dict((name, job) for job, name in re.findall(r"^job (\d+): (\S+)", stdout, re.M))


def wait_for(path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.2)


def submit_list(slurm, lines: list[str], *options: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """scripts/submit.py --slurm on a hand-written run list."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "submit.py"), "--slurm",
                           "--gpus_per_job=0", *options], input="\n".join([f"cd {ROOT}", *lines]) + "\n",
                          capture_output=True, text=True, timeout=60, env=env or slurm.env)


def standin(folder, steps: int, *flags: str) -> str:
    return f"{sys.executable} tests/requeue_standin.py --dir={folder} --steps={steps} {' '.join(flags)}"


@pytest.fixture(scope="module")
def time_limited_job(slurm, tmp_path_factory):
    """A 45-second stand-in run in a job of one minute that asks for SIGUSR1 59 s before its end.
    SLURM checks time limits only every 30 s or so: submitted as this module starts (the demo's
    test asks for it), its wait overlaps the other tests."""
    folder = tmp_path_factory.mktemp("time-limit")
    result = submit_list(slurm, [standin(folder / "run", 450)], "--time=1", "--signal_seconds=59")
    assert result.returncode == 0, result.stderr
    [job] = submitted(result.stdout).values()
    return job, folder


@pytest.mark.usefixtures("time_limited_job")
def test_the_demo_as_a_table_on_slurm(slurm, tmp_path):
    """The demo's runs as SLURM jobs, each after the runs it reads; the runs pretend (3 s each), so
    that the test is about the jobs, not about training (test_readme runs the scripts for real)."""
    env = {**slurm.env, "PYTHON": logging_python(tmp_path), "PRETEND_SECONDS": "3"}
    out = tmp_path / "demo"
    result = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh"), str(out), "--quick", "--slurm",
                             "--gpus_per_job", "0", "--partition", "debug", "--time", "10:00"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = submitted(result.stdout)
    assert len(jobs) == 17, result.stdout
    report = slurm.job(jobs["demo_report"])  # it waits for all sixteen runs (unless some already ended)
    assert report["JobState"] == "PENDING" and report["Reason"] == "Dependency", report
    assert f"job {jobs['demo_report']}: demo_report after {','.join(list(jobs.values())[:16])} (log" in result.stdout

    final = slurm.wait(jobs.values(), timeout=300)
    assert all(job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0" for job in final.values()), final
    assert all(job["TimeLimit"] == "00:10:00" and job["Partition"] == "debug" for job in final.values())
    listed = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh"), str(out), "--quick", "--dry-run"],
                            capture_output=True, text=True, env=env).stdout.splitlines()
    runs = read_events(tmp_path)
    assert len(runs) == 17
    assert check_schedule(runs, waits([l for l in listed if l.startswith(env["PYTHON"])]), None) >= 2  # several at once
    for name, job in jobs.items():
        log = (out / f"{name}.log").read_text()
        assert f"job {job} on" in log and "exit status 0" in log, log
    assert (out / "sgd-1" / "summary.json").exists()
    again = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh"), str(out), "--quick", "--slurm",
                            "--gpus_per_job", "0"], capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and not submitted(again.stdout), again.stdout + again.stderr  # its report neither
    assert again.stdout.count("# done, skipped") == 17 and "# 0 jobs submitted" in again.stdout
    board = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh"), str(out), "--quick", "--status"],
                           capture_output=True, text=True, timeout=120, env=env).stdout.splitlines()
    assert board[-1] == "# every run is done" and sum(line.startswith("done ") for line in board) == 17, board


def test_a_requeued_job_continues_and_its_dependent_waits(slurm, tmp_path):
    """SIGUSR1 to the batch shell (what --signal=B:USR1@S sends before the time limit): the run
    saves and exits 75, the job requeues itself and continues; the job after it waits throughout.
    Starting the same submission again meanwhile adds no job."""
    first, second = tmp_path / "first", tmp_path / "second"
    lines = [standin(first, 40), standin(second, 2, f"--ckpt={first}/state.json")]
    result = submit_list(slurm, lines, "--time=5:00")
    assert result.returncode == 0, result.stderr
    jobs = submitted(result.stdout)
    assert list(jobs) == ["first", "second"] and f"second after {jobs['first']}" in result.stdout

    wait_for(first / "starts.log")
    time.sleep(0.5)
    slurm.run("scancel", "--signal=USR1", "--batch", jobs["first"])
    again = submit_list(slurm, lines, "--time=5:00")
    assert again.returncode == 0 and not submitted(again.stdout), again.stdout + again.stderr
    assert again.stdout.count("# already queued") == 2

    final = slurm.wait(jobs.values(), timeout=90)
    assert [final[j]["JobState"] for j in jobs.values()] == ["COMPLETED", "COMPLETED"], final
    assert final[jobs["first"]]["Restarts"] == "1"
    starts = [tuple(map(int, line.split())) for line in (first / "starts.log").read_text().splitlines()]
    assert len(starts) == 2 and starts[0] == (1, 0) and 0 < starts[1][1] < 40, starts  # continued, not restarted
    log = (tmp_path / "first.log").read_text()
    assert "exit status 75" in log and "back in the queue" in log and "start 2," in log and "done: 40 steps" in log
    assert (second / "summary.json").exists()  # it checked that first had finished when it started


def test_a_cancelled_job_is_not_requeued(slurm, tmp_path):
    run = tmp_path / "cancelled"
    result = submit_list(slurm, [standin(run, 600)])
    assert result.returncode == 0, result.stderr
    [job] = submitted(result.stdout).values()
    wait_for(run / "starts.log")
    slurm.run("scancel", job)
    final = slurm.wait([job], timeout=60)[job]
    assert final["JobState"] == "CANCELLED" and final["Restarts"] == "0", final
    time.sleep(1)
    assert "not requeued" in (tmp_path / "cancelled.log").read_text()
    assert len((run / "starts.log").read_text().splitlines()) == 1


def test_an_unknown_partition_is_an_error_before_submitting(slurm, tmp_path):
    before = slurm.run("squeue", "--noheader", "--format=%i").stdout
    result = subprocess.run(["bash", os.path.join(ROOT, "scripts", "swa_table.sh"), "/data", str(tmp_path / "out"),
                             "--slurm", "--partition", "nosuch"], capture_output=True, text=True, timeout=60,
                            env={**slurm.env, "PYTHON": "python"})
    assert_one_error_line(result)
    assert "nosuch" in result.stderr and slurm.run("squeue", "--noheader", "--format=%i").stdout == before
    assert not (tmp_path / "out").exists()


def test_the_time_limit_signal_requeues_and_the_run_continues(slurm, time_limited_job):
    """sbatch --signal=B:USR1@59 --time=1, for real: SIGUSR1 (10), not the time limit's SIGTERM,
    stops the run, which continues in the requeued job (once or more) and finishes."""
    job, folder = time_limited_job
    final = slurm.wait([job], timeout=180)[job]
    assert final["JobState"] == "COMPLETED" and int(final["Restarts"]) >= 1, final
    log = (folder / "run.log").read_text()
    saved = [int(step) for step in re.findall(r"^signal 10: saved at step (\d+), exit 75$", log, re.M)]
    starts = [tuple(map(int, line.split())) for line in (folder / "run" / "starts.log").read_text().splitlines()]
    assert starts == [(1, 0)] + [(i + 2, step) for i, step in enumerate(saved)], (starts, log)
    assert len(saved) == int(final["Restarts"]) and "done: 450 steps" in log and "signal 15" not in log


def board_of(slurm, lines: list[str]) -> dict[str, tuple[str, str]]:
    """{run: (state, what follows)} of submit.py --status on a run list, and "#": its comments."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "submit.py"), "--status", "--slurm"],
                            input="\n".join([f"cd {ROOT}", *lines]) + "\n", capture_output=True, text=True,
                            timeout=120, env=slurm.env)
    assert result.returncode == 0, result.stderr
    board = {"#": [line for line in result.stdout.splitlines() if line.startswith("#")]}
    for line in result.stdout.splitlines():
        match = re.fullmatch(r"((?:never |not )?\S+)\s+(\S+)\s*(.*)", line)
        if match and not line.startswith("#"):
            board[match.group(2)] = (match.group(1), match.group(3))
    return board


def test_the_status_board_of_a_table_on_slurm(slurm, tmp_path):
    """A run done, one failed and the run after it (cancelled by SLURM: it never starts), one running
    and the run waiting for it, one cancelled (it had checkpointed) and the run after it, and a job
    requeued with scontrol: the board says each, from the logs and the queue, and what to type to go
    on; the requeued job's log says SLURM requeues it. Each job of 2 CPUs (--sbatch_args with a --
    value): OMP_NUM_THREADS=2."""
    t = tmp_path
    lines = [standin(t / "ok", 3), standin(t / "bad", 3, f"--ckpt={t}/missing/x"),
             standin(t / "after-bad", 3, f"--ckpt={t}/bad/state.json"), standin(t / "long", 600),
             standin(t / "after-long", 3, f"--ckpt={t}/long/state.json"), standin(t / "cancelled", 600),
             standin(t / "after-cancelled", 3, f"--ckpt={t}/cancelled/state.json")]
    env = {k: v for k, v in slurm.env.items() if k != "OMP_NUM_THREADS"}  # the job script's own choice
    result = submit_list(slurm, lines, "--sbatch_args", "--cpus-per-task=2", "--command=bash scripts/my_table.sh",
                         env=env)
    assert result.returncode == 0, result.stderr
    jobs = submitted(result.stdout)
    for name in ("ok", "long", "cancelled"):
        wait_for(t / name / "starts.log")
    wait_for(t / "ok" / "summary.json")
    slurm.run("scancel", jobs["cancelled"])
    slurm.wait([jobs["cancelled"], jobs["bad"]], timeout=60)
    time.sleep(2)  # SLURM cancels the dependents of a failed or cancelled job (--kill-on-invalid-dep)
    board = board_of(slurm, lines)
    assert board["ok"][0] == "done"
    assert board["bad"][0] == "failed" and "error: started before the run of" in board["bad"][1], board["bad"]
    assert board["after-bad"][0] == "never started" and "bad" in board["after-bad"][1], board
    assert board["long"][0] == "running" and board["long"][1].startswith(f"job {jobs['long']} on "), board
    assert board["after-long"] == ("waiting", f"job {jobs['after-long']}, for long"), board
    assert board["cancelled"][0] == "cancelled" and "scancel" in board["cancelled"][1], board
    assert board["after-cancelled"][0] == "never started" and "cancelled" in board["after-cancelled"][1], board
    assert board["#"][-1].endswith("start the same command again: bash scripts/my_table.sh"), board["#"]
    assert "OMP_NUM_THREADS=2," in (t / "ok.log").read_text()

    slurm.run("scontrol", "requeue", jobs["long"])  # SLURM's own requeue: the run saves, the job goes on
    deadline = time.monotonic() + 60
    while len((t / "long" / "starts.log").read_text().splitlines()) < 2:
        assert time.monotonic() < deadline, (t / "long.log").read_text()
        time.sleep(0.5)
    log = (t / "long.log").read_text()
    assert "exit status 75: stopped to be continued" in log and "# SLURM requeues this job itself" in log, log
    assert log.index("exit status 75") < log.index("# SLURM requeues")  # the closing lines first
    assert board_of(slurm, lines)["long"][1].endswith(", start 2"), log
    slurm.run("scancel", jobs["long"], jobs["after-long"])


def test_slurm_without_a_controller_is_one_error_line(slurm, tmp_path):
    """SLURM installed, its controller not answering (a port where none listens): one error line and
    exit 2, nothing submitted; the same for --status --slurm (without --slurm, the board from the logs)."""
    conf = tmp_path / "slurm.conf"
    text = open(slurm.conf).read()
    text = re.sub(r"^SlurmctldPort=\d+$", f"SlurmctldPort={slurm_cluster._free_port()}", text, flags=re.M)
    conf.write_text(text + "MessageTimeout=1\nTCPTimeout=1\n")  # the client gives up sooner: the same error
    env = {**slurm.env, "SLURM_CONF": str(conf)}
    lines = f"cd {ROOT}\n{standin(tmp_path / 'run', 3)}\n"
    for options in (["--slurm", "--gpus_per_job=0"], ["--status", "--slurm"]):
        result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "submit.py"), *options], input=lines,
                                capture_output=True, text=True, timeout=180, env=env)
        assert_one_error_line(result)
        assert "cannot reach SLURM" in result.stderr and "Unable to contact slurm controller" in result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.log").exists()
