"""Runs that continue: the same command started again, --resume, --restart, stop signals,
SIGKILL at any moment, file permissions and write errors (runtime and the scripts on it)."""
from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, assert_user_error, run_here, run_script

DIGITS = ["--dataset=DIGITS", "--use_test"]
TRAIN = ["train.py", *DIGITS, "--model=MLP", "--epochs=4", "--lr=0.05", "--save_freq=2"]


def start(script: str, *args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.join(ROOT, script), *map(str, args)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT), **kwargs)


def weights(path) -> dict:
    return torch.load(path, weights_only=True)["model_state"]


def assert_same_weights(a, b) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def files(folder) -> dict[str, float]:
    return {name: os.stat(os.path.join(folder, name)).st_mtime_ns for name in sorted(os.listdir(folder))}


# --------------------------------------------------------------------------- the same command again

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "train"
    run_here(*TRAIN, f"--dir={folder}")
    return folder


def test_a_finished_run_started_again_changes_nothing(finished_run):
    before = files(finished_run)
    result = run_script(*TRAIN, f"--dir={finished_run}")
    assert "finished" in result.stdout
    assert files(finished_run) == before


def test_another_command_in_the_same_folder_is_an_error_naming_the_flags(finished_run):
    before = files(finished_run)
    error = assert_user_error(run_script(*TRAIN[:-1], "--save_freq=1", "--lr=0.1", f"--dir={finished_run}",
                                         check=False))
    assert "--lr=0.05 -> 0.1" in error and "--save_freq=2 -> 1" in error and "--restart" in error
    assert files(finished_run) == before


def test_restart_starts_over(finished_run, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(finished_run, folder)
    run_here(*TRAIN[:-2], "--epochs=1", f"--dir={folder}", "--restart")
    assert sorted(os.listdir(folder)) == ["args.json", "checkpoint-0.pt", "checkpoint-1.pt", "command.sh",
                                          "metrics.csv", "summary.json"]
    assert json.loads((folder / "summary.json").read_text())["epoch"] == 1


def test_resume_takes_the_checkpoints_settings_and_extends_only_when_asked(finished_run, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(finished_run, folder)
    before = files(folder)
    # --resume alone: DIGITS, its split and 4 epochs come from the checkpoint; the run is finished
    result = run_here("train.py", f"--resume={folder / 'checkpoint-4.pt'}")
    assert "finished" in result and files(folder) == before
    # an earlier checkpoint of a run that went on means the run's latest: it does not go back
    result = run_here("train.py", f"--resume={folder / 'checkpoint-2.pt'}")
    assert "finished" in result and files(folder) == before
    # more epochs extend it, in its folder; args.json stays, the command is appended
    run_here("train.py", f"--resume={folder}", "--epochs=5")
    assert json.loads((folder / "summary.json").read_text())["epoch"] == 5
    assert (folder / "checkpoint-5.pt").is_file()
    assert json.loads((folder / "args.json").read_text())["epochs"] == 4
    commands = (folder / "command.sh").read_text().splitlines()
    assert len(commands) == 3 and commands[-1].endswith(f"--resume={folder} --epochs=5")  # finished: no line
    # never switching its split
    assert_user_error(run_script("train.py", f"--resume={folder}", "--epochs=6", "--no_use_test", check=False))


def test_resume_of_a_finished_curve_does_not_train_on(finished_run, tmp_path):
    curve = tmp_path / "curve"
    ckpt = finished_run / "checkpoint-4.pt"
    run_here("train.py", *DIGITS, "--model=MLP", "--curve=PolyChain", f"--init_start={ckpt}",
               f"--init_end={ckpt}", "--fix_start", "--fix_end", "--epochs=1", f"--dir={curve}")
    before = files(curve)
    result = run_here("train.py", f"--resume={curve / 'checkpoint-1.pt'}")
    assert "finished" in result and files(curve) == before


def test_dir_naming_a_file_is_an_error(tmp_path):
    path = tmp_path / "file"
    path.write_text("keep me")
    assert "is a file" in assert_user_error(run_script(*TRAIN, f"--dir={path}", check=False))
    assert path.read_text() == "keep me"


def test_ckpt_takes_a_run_folder(finished_run, tmp_path):
    run_here("eval_ensemble.py", f"--ckpt={finished_run}", f"--dir={tmp_path / 'ens'}")
    row = (tmp_path / "ens" / "metrics.csv").read_text().splitlines()[1]
    assert str(finished_run / "checkpoint-4.pt") in row


# --------------------------------------------------------------------------- files others can read, write errors

@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664)])
def test_run_files_get_the_umasks_permissions(tmp_path, umask, mode):
    folder = tmp_path / "run"
    previous = os.umask(umask)
    try:
        run_script("train.py", *DIGITS, "--model=MLP", "--epochs=1", f"--dir={folder}")
    finally:
        os.umask(previous)
    for name in os.listdir(folder):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == mode, name


def test_a_write_error_is_one_error_line_and_keeps_the_earlier_checkpoints(tmp_path):
    folder = tmp_path / "run"
    command = [*TRAIN[:-2], "--epochs=3", "--save_freq=1", f"--dir={folder}"]
    run = start(*command)  # stopped after its first epoch ...
    _wait_for(folder / "checkpoint-1.pt", run)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 75
    intact = weights(folder / "checkpoint-1.pt")

    # ... and continued where files may not grow past 500 kB: checkpoint-2.pt (700 kB) stops part way,
    # and torch.save raises a RuntimeError ("unexpected pos ...") whose context is the OSError (EFBIG)
    limit = 500_000
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))  # this process, for a moment: what torch raises
    try:
        with pytest.raises(RuntimeError) as raised, open(tmp_path / "raw.pt", "wb") as f:
            torch.save(torch.load(folder / "checkpoint-1.pt", weights_only=True), f)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert isinstance(raised.value.__context__, OSError) and "write" not in str(raised.value).lower()

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a moment only: Python ignores it as it starts

    result = subprocess.run([sys.executable, os.path.join(ROOT, command[0]), *command[1:]], cwd=ROOT,
                            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT),
                            preexec_fn=small_files, timeout=120)
    error = assert_user_error(result, status=1)
    assert error == f"error: cannot write {folder / 'checkpoint-2.pt'}: File too large", result.stderr
    for name, tensor in weights(folder / "checkpoint-1.pt").items():
        assert torch.equal(tensor, intact[name])
    assert not [n for n in os.listdir(folder) if n.startswith(".tmp-")]  # no half-written files left


def _wait_for(path, process, timeout=120):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, process.stderr.read()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# --------------------------------------------------------------------------- stops and kills

CURVE = ["train_curve.py", *DIGITS, "--model=MLP", "--curve=Bezier", "--epochs=3", "--lr=0.05"]
FGE = ["fge.py", "--epochs=4", "--cycle=2", "--lr_1=0.05", "--lr_2=0.005"]
SWA = ["swa.py", *DIGITS, "--model=MLP", "--epochs=4", "--lr_init=0.05", "--swa", "--swa_start=2", "--swa_lr=0.02",
       "--eval_freq=1", "--save_freq=2"]


@pytest.fixture(scope="module")
def commands(finished_run):
    ckpt = finished_run / "checkpoint-2.pt"
    return {"train": (TRAIN, "checkpoint-4.pt"),
            "curve": (CURVE + [f"--init_start={ckpt}", f"--init_end={finished_run / 'checkpoint-4.pt'}",
                               "--fix_start", "--fix_end"], "checkpoint-3.pt"),
            "fge": (FGE + [f"--ckpt={ckpt}"], "last.pt"),
            "swa": (SWA, "swa.pt")}


@pytest.fixture(scope="module")
def uninterrupted(commands, tmp_path_factory):
    """Each script's run, start to end."""
    out = {}
    for name, (command, final) in commands.items():
        folder = tmp_path_factory.mktemp("whole") / name
        run_here(*command, f"--dir={folder}")
        out[name] = folder / final
    return out


@pytest.mark.parametrize("name", ["train", "curve", "fge", "swa"])
def test_sigterm_stops_after_the_step_and_the_same_command_continues(name, commands, uninterrupted, tmp_path):
    command, final = commands[name]
    folder = tmp_path / name
    run = start(*command, f"--dir={folder}")
    _wait_for(folder / "metrics.csv", run)  # within the second epoch
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 75, run.stderr.read()
    assert "start the same command again" in run.stderr.read()
    assert (folder / "last.pt").is_file()
    run_here(*command, f"--dir={folder}")
    assert_same_weights(folder / final, uninterrupted[name])
    assert json.loads((folder / "summary.json").read_text()) == \
        json.loads((uninterrupted[name].parent / "summary.json").read_text())


@pytest.mark.parametrize("name", ["train", "curve", "fge", "swa"])
def test_sigkill_at_a_random_moment_and_the_same_command_again(name, commands, uninterrupted, tmp_path):
    command, final = commands[name]
    folder = tmp_path / name
    delay = random.Random(name).uniform(2.0, 6.0)  # past the start-up, somewhere in the run
    run = start(*command, f"--dir={folder}")
    time.sleep(delay)
    run.kill()
    run.wait()
    run_here(*command, f"--dir={folder}")
    assert_same_weights(folder / final, uninterrupted[name])


# --------------------------------------------------------------------------- stop signals while a run starts

def catches(pid: int) -> bool:
    """Whether the process has its handlers for SIGTERM and SIGUSR1 (the kernel's SigCgt mask)."""
    with open(f"/proc/{pid}/status") as f:
        mask = int(next(line for line in f if line.startswith("SigCgt:")).split()[1], 16)
    return all(mask >> (sig - 1) & 1 for sig in (signal.SIGTERM, signal.SIGUSR1))


def cpu_seconds(pid: int) -> float:
    """The CPU time the process has used (all its threads): a moment of its start-up, whatever the
    machine's load, where wall-clock delays vary threefold on a shared machine."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def signalled(command: list, sig, *, delay: float = 0.0, cpu: float = 0.0, when=None) -> tuple[int, float, str]:
    """Start ``command``; once it catches the stop signals (about a tenth of a second after it
    starts: before that the Python interpreter itself is starting), send it ``sig`` after ``delay``
    seconds, once it has used ``cpu`` seconds of CPU, or once the file ``when`` exists. Returns its
    exit status, the CPU seconds it had used then, and its stderr."""
    run = start(*command)
    deadline = time.monotonic() + 120
    while not catches(run.pid):
        assert run.poll() is None and time.monotonic() < deadline, run.stderr.read()
        time.sleep(0.002)
    time.sleep(delay)
    while run.poll() is None and (cpu_seconds(run.pid) < cpu or (when is not None and not os.path.exists(when))):
        time.sleep(0.002)
    used = cpu_seconds(run.pid) if run.poll() is None else float("inf")
    run.send_signal(sig)
    return run.wait(timeout=120), used, run.stderr.read()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads the handlers and the CPU time off /proc")
def test_a_stop_signal_at_any_moment_of_the_start_up_exits_75_and_the_same_command_continues(finished_run,
                                                                                           tmp_path):
    """train.py stopped again and again while it starts (as it imports torch, reads its data, builds its
    model; a new run and a continued one: exit 75 at once) and in its first step (saved, exit 75);
    the same command in the end has an uninterrupted run's weights and figures. The moments are
    drawn from the CPU time a start-up takes, measured on the way."""
    folder = tmp_path / "run"
    command = [*TRAIN, f"--dir={folder}"]
    rng = random.Random(20)
    statuses, messages = [], []
    for sig, moment in ((signal.SIGUSR1, {"delay": rng.uniform(0.0, 0.3)}),  # importing torch: a new run
                        (signal.SIGTERM, {"when": folder / "checkpoint-0.pt"})):  # its first step: saved
        status, used, err = signalled(command, sig, **moment)
        statuses.append(status)
        messages.append(err)
    assert (folder / "last.pt").is_file(), messages
    startup = used  # the CPU seconds of a start-up, to the first step
    for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGUSR1):  # continued, at random moments
        status, used, err = signalled(command, sig, cpu=rng.uniform(0.0, 0.9 * startup))
        statuses.append(status)
        messages.append(err)
    assert statuses == [75] * 5, (statuses, messages)
    assert all("start the same command again" in err for err in messages), messages
    run_script(*command)
    assert_same_weights(folder / "checkpoint-4.pt", finished_run / "checkpoint-4.pt")
    assert json.loads((folder / "summary.json").read_text()) == json.loads((finished_run / "summary.json").read_text())
    command_sh = (folder / "command.sh").read_text()
    assert command_sh.endswith("\n") and command_sh.count("train.py") >= 2  # a line a start that wrote records


def test_an_evaluation_ignores_the_time_limit_warning_and_sigterm_ends_it_with_75(finished_run, tmp_path):
    """surface.py has nothing to save: once it has said so (its run folder opened), SIGUSR1 changes
    nothing and SIGTERM ends it at once, for a requeue that starts it over. (Before, while it starts,
    either signal ends it with 75, as any script: tests/test_stops.py.)"""
    folder = tmp_path / "surface"
    run = start("surface.py", f"--ckpt={finished_run}", "--x=-1:1:2000", f"--dir={folder}")
    while not (folder / "args.json").exists():
        assert run.poll() is None, run.stderr.read()
        time.sleep(0.01)
    run.send_signal(signal.SIGUSR1)
    time.sleep(0.3)
    assert run.poll() is None, run.stderr.read()
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=30) == 75
    assert "stopped by SIGTERM: exit 75" in run.stderr.read() and not (folder / "summary.json").exists()


_FAULTS_PROGRAM = """
import resource, sys
import torch
sys.path.insert(0, {root!r})
import runtime
if sys.argv[1] == "keep":
    assert runtime.keep_freed_cpu_memory()
faults = []
for _ in range(5):  # a step's pattern: large tensors written, then freed together
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    xs = [torch.ones(2 * 2 ** 20) for _ in range(8)]  # 8 MB each
    del xs
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(faults)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_freed_cpu_memory_is_kept_for_the_next_step():
    """runtime.keep_freed_cpu_memory: tensors allocated again after being freed take memory the
    process already has, with no page faults once the heap has grown; by default glibc gives
    64 MB freed at once back to the system and faults on its pages again. Counted by the kernel
    (getrusage), in fresh processes."""
    program = _FAULTS_PROGRAM.format(root=str(ROOT))
    faults = {mode: json.loads(subprocess.run([sys.executable, "-c", program, mode], capture_output=True,
                                              text=True, check=True).stdout) for mode in ("default", "keep")}
    pages = 64 * 2 ** 20 / os.sysconf("SC_PAGE_SIZE")  # one round's
    # after the first round, whose memory is new in either case; 1.1 to 3 rounds' worth in 30 runs
    assert sum(faults["default"][1:]) >= 0.5 * pages
    # the heap grows during the first rounds (up to 24 MB more), then no page is new: 0 or one
    # 8 MB tensor's pages over the last two rounds in 30 runs
    assert sum(faults["keep"][-2:]) <= 0.15 * pages
