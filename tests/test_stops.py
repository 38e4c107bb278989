"""Runs that must not be lost: the stop signals' handler (runtime/signals.py), point by point runs
that continue after a stop or a kill, --resume of another script's folder, a failed write.

Tiny subprocesses (no torch) where a signal must be real; the rest calls ``main`` in this process.
tests/test_runtime.py sends real signals to real scripts, and runs one under a file-size limit.
"""
from __future__ import annotations

import ast
import glob
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import cli
import eval_curve
import fge
import plane
import runtime
import simplex
import swa
import train
import train_curve
import train_subspace
from conftest import ROOT, random_checkpoint, user_error
from test_plane import write_model
from test_runtime import files

DIGITS = ["--dataset=DIGITS", "--use_test"]


@pytest.fixture(autouse=True)
def signals_restored():
    """In-process runs install the stop handlers while they run: put pytest's back whatever happens."""
    saved = {sig: signal.getsignal(sig) for sig in runtime.signals.SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    runtime.STOP._previous.clear()
    runtime.STOP.reset()


def main(script, *argv) -> None:
    cli.run(script.main, [str(a) for a in argv])


# --------------------------------------------------------------------------- the handler itself

_SIGNALS = os.path.join(ROOT, "runtime", "signals.py")
_PROGRAM = """
import importlib.util, os, signal, sys, time
spec = importlib.util.spec_from_file_location("signals", {path!r})  # alone: no torch, no runtime package
signals = importlib.util.module_from_spec(spec)
spec.loader.exec_module(signals)
stop = signals.STOP
stop.install()
{body}
"""


def program(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _PROGRAM.format(path=_SIGNALS, body=body)], capture_output=True,
                          text=True, timeout=60)


def test_while_starting_either_signal_exits_75_at_once():
    for sig in ("SIGUSR1", "SIGTERM"):
        result = program(f"""
stop.expect(saves=True)  # a run that saves, not computing yet: nothing to lose
os.kill(os.getpid(), signal.{sig})
time.sleep(5)
print("not reached", flush=True)
""")
        assert result.returncode == 75 and not result.stdout, result
        assert result.stderr.startswith(f"stopped by {sig} while starting"), result.stderr


def test_once_computing_a_signal_is_remembered_and_a_second_sigterm_ends_the_process():
    result = program("""
stop.expect(saves=True)
stop.computing()
os.kill(os.getpid(), signal.SIGUSR1)
os.kill(os.getpid(), signal.SIGTERM)
os.kill(os.getpid(), signal.SIGTERM)  # the same request, delivered twice (SLURM and the job script)
print(stop.received, flush=True)
time.sleep(signals.SAME_REQUEST_SECONDS + 0.2)
os.kill(os.getpid(), signal.SIGTERM)  # a second request: the process dies of it
time.sleep(5)
print("still here", flush=True)
""")
    assert result.stdout.split() == ["SIGUSR1"] and result.returncode == -signal.SIGTERM, result


def test_with_nothing_to_save_sigterm_exits_75_at_once_and_sigusr1_is_ignored():
    result = program("""
stop.expect(saves=False)
os.kill(os.getpid(), signal.SIGUSR1)  # the time limit's warning: the run uses its last minutes
print("working on", stop.received, flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
print("not reached", flush=True)
""")
    assert result.returncode == 75 and result.stdout.split() == ["working", "on", "None"], result
    assert result.stderr.startswith("stopped by SIGTERM: exit 75")


def test_every_script_imports_runtime_first():
    """Its handlers are installed before anything slow is imported (numpy, torch)."""
    for path in sorted(glob.glob(os.path.join(ROOT, "*.py"))):
        tree = ast.parse(open(path).read())
        imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
                   and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")]
        if os.path.basename(path) in ("data.py", "utils.py") or not imports:
            continue
        first = imports[0]
        assert isinstance(first, ast.Import) and first.names[0].name in ("runtime", "cli"), path
    text = open(os.path.join(ROOT, "cli", "__init__.py")).read()
    assert ast.parse(text).body[1].names[0].name == "runtime"  # after its docstring


# --------------------------------------------------------------------------- point by point runs continue

class Killed(BaseException):
    """A kill, where the run can do nothing more."""


def stop_after(monkeypatch, points: int) -> None:
    """A stop signal seen after the ``points``-th point (point_done looks once per point)."""
    count = [0]

    def stop_requested(self) -> bool:
        count[0] += 1
        return count[0] == points
    monkeypatch.setattr(runtime.Run, "stop_requested", stop_requested)


def kill_at(monkeypatch, points: int) -> None:
    """Killed after the ``points``-th point's row reached metrics.csv, before points.pt did."""
    count, save = [0], runtime.folder.save_points

    def save_points(path, progress):
        count[0] += 1
        if count[0] == points:
            raise Killed
        save(path, progress)
    monkeypatch.setattr(runtime.folder, "save_points", save_points)


def outputs(folder, names) -> dict:
    out = {}
    for name in names:
        path = folder / name
        if name.endswith(".npz"):
            with np.load(path) as arrays:
                out[name] = {k: arrays[k].tolist() for k in arrays.files}
        else:
            out[name] = path.read_text()
    return out


def test_eval_curve_stopped_or_killed_continues_after_its_last_point(tmp_path, monkeypatch):
    ends = [random_checkpoint(tmp_path / f"{seed}.pt", "MLP", seed) for seed in (1, 2)]
    command = [*DIGITS, f"--init_start={ends[0]}", f"--init_end={ends[1]}", "--num_points=5", "--ensemble"]
    main(eval_curve, *command, f"--dir={tmp_path / 'whole'}")
    names = ["metrics.csv", "curve.csv", "curve.npz", "summary.json", "command.sh"]
    whole = outputs(tmp_path / "whole", names[:-1])
    folder = tmp_path / "stopped"
    stop_after(monkeypatch, 2)
    with pytest.raises(SystemExit) as stopped:
        main(eval_curve, *command, f"--dir={folder}")
    assert stopped.value.code == runtime.EXIT_REQUEUE and (folder / "points.pt").is_file()
    monkeypatch.undo()
    kill_at(monkeypatch, 2)  # the fourth point, its row written
    with pytest.raises(Killed):
        main(eval_curve, *command, f"--dir={folder}")
    assert len((folder / "metrics.csv").read_text().splitlines()) == 1 + 4
    monkeypatch.undo()
    main(eval_curve, *command, f"--dir={folder}")
    assert outputs(folder, names[:-1]) == whole  # dl, the ensemble's sum, the draws: as uninterrupted
    assert not (folder / "points.pt").exists() and len((folder / "command.sh").read_text().splitlines()) == 4


def test_plane_stopped_continues_after_its_last_point(tmp_path, monkeypatch, capsys):
    paths = [write_model(tmp_path / f"{seed}.pt", seed) for seed in (1, 2, 3)]
    command = [*DIGITS, *(f"--ckpt={p}" for p in paths), "--curve_points=3"]
    main(plane, *command, "--grid_points=3", f"--dir={tmp_path / 'whole'}")
    names = ["metrics.csv", "plane.npz", "summary.json"]
    folder = tmp_path / "stopped"
    stop_after(monkeypatch, 4)
    with pytest.raises(SystemExit):
        main(plane, *command, "--grid_points=3", f"--dir={folder}")
    monkeypatch.undo()
    capsys.readouterr()
    # another command in its folder is an error, as for any run (--restart would start it over)
    assert "--grid_points=3 -> 2" in user_error(capsys, plane.main, *command, "--grid_points=2", f"--dir={folder}")
    main(plane, *command, "--grid_points=3", f"--dir={folder}")
    assert outputs(folder, names) == outputs(tmp_path / "whole", names)


# --------------------------------------------------------------------------- --resume of another script's folder

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A tiny finished run of each training script, on DIGITS."""
    root = tmp_path_factory.mktemp("scripts")
    saved = {sig: signal.getsignal(sig) for sig in runtime.signals.SIGNALS}
    mlp = [*DIGITS, "--model=MLP"]
    main(train, *mlp, "--epochs=1", f"--dir={root / 'train'}")
    ckpt = root / "train" / "checkpoint-1.pt"
    main(fge, f"--ckpt={ckpt}", "--epochs=2", "--cycle=2", "--lr_1=0.05", "--lr_2=0.01", f"--dir={root / 'fge'}")
    main(swa, *mlp, "--epochs=2", "--swa", "--swa_start=1", "--swa_lr=0.01", "--lr_init=0.05", f"--dir={root / 'swa'}")
    main(train_subspace, *mlp, "--shape=line", "--epochs=2", "--warmup_epochs=1", "--num_points=2",
         f"--dir={root / 'line'}")
    main(simplex, f"--ckpt={ckpt}", "--num_vertices=2", "--epochs_per_vertex=1", "--num_samples=1",
         "--num_test_samples=1", f"--dir={root / 'spro'}")
    main(train_curve, *mlp, "--curve=Bezier", f"--init_start={ckpt}", f"--init_end={ckpt}", "--fix_start",
         "--fix_end", "--epochs=1", f"--dir={root / 'curve'}")
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    return root


# the folders a script's --resume may continue (train.py hands a curve on to train_curve.py)
OWN = {train: {"train", "curve"}, swa: {"swa"}, train_curve: {"curve"}, train_subspace: {"line"}}


@pytest.mark.parametrize("script", [train, swa, train_curve, train_subspace], ids=lambda s: s.__name__)
def test_resume_of_another_scripts_folder_is_one_error_and_touches_nothing(script, folders, capsys):
    for name in ("train", "fge", "swa", "line", "spro", "curve"):
        if name in OWN[script]:
            continue
        before = {sub: files(folders / sub) for sub in os.listdir(folders) if (folders / sub).is_dir()}
        error = user_error(capsys, script.main, f"--resume={folders / name}", "--epochs=3")
        assert str(folders / name) in error, (name, error)
        after = {sub: files(folders / sub) for sub in os.listdir(folders) if (folders / sub).is_dir()}
        assert after == before, name


# --------------------------------------------------------------------------- a write that fails

def test_a_failed_write_is_recognised_by_the_os_error_behind_it():
    """torch.save's RuntimeError ("unexpected pos ..." or "file write failed") carries the file's
    OSError in its context; tests/test_runtime.py makes one under a real file-size limit."""
    full = OSError(27, "File too large")
    try:
        try:
            raise full
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 768 vs 662")
    except RuntimeError as exc:
        wrapped = exc
    assert runtime.files.os_error_behind(wrapped) is full and runtime.files.os_error_behind(full) is full
    assert runtime.files.os_error_behind(RuntimeError("a bug")) is None
    assert runtime.files.os_error_behind(KeyboardInterrupt()) is None
    with pytest.raises(runtime.WriteError, match=r"cannot write .*x\.pt: File too large"):
        with runtime.atomic_open("x.pt", "wb"):
            raise wrapped


# --------------------------------------------------------------------------- progress bars in a log

def test_progress_bars_in_a_log_are_lines_not_redraws(monkeypatch, capsys):
    """stderr not a terminal (a SLURM job's log; pytest's capture here): no carriage-return redraws;
    a bar that ends within LOG_SECONDS says nothing (the epoch's table row does), a longer one a line
    now and then."""
    assert list(cli.progress(range(50), "epoch 1")) == list(range(50))
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(cli.output, "LOG_SECONDS", 0)
    list(cli.progress(range(3), "epoch 2"))
    lines = capsys.readouterr().err.split("\n")
    assert "\r" not in "".join(lines) and lines[-1] == "" and len(lines) >= 3, lines
    assert all(line.startswith("epoch 2:") for line in lines[:-1]), lines
