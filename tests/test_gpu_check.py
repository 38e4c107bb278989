"""scripts/gpu_check.sh, on the CPU, so that the GPU's check cannot rot unseen: every check's command
line parses with its script's own parser in every mode, the command runs a few scripts, the gpu
tests and a bench figure end to end, and its usage mistakes are one ``error:`` line."""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, user_error

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import gpu_check  # noqa: E402

SCRIPTS = ["train.py", "train_curve.py", "eval_curve.py", "fge.py", "swa.py", "swag.py", "eval_ensemble.py",
           "plane.py", "train_subspace.py", "simplex.py", "align.py", "rays.py", "hessian.py", "surface.py"]


def test_every_script_is_checked_and_each_command_line_parses_in_every_mode(tmp_path):
    listed = gpu_check.checks(str(tmp_path / "data"), str(tmp_path / "runs"), "ConvFC", 32)
    assert {gpu_check.script_of(name) for name, *_ in listed} == set(SCRIPTS)
    names = [name for name, *_ in listed]
    for name, module, argv, needs in listed:
        assert all(names.index(n) < names.index(name) for n in needs), name  # what it reads is written before
        # train.py --curve hands its command line over to train_curve.py's parser
        parser = importlib.import_module("train_curve" if "--curve=Bezier" in argv else module).build_parser()
        for flags in gpu_check.MODES.values():
            args = parser.parse_args([*argv, "--device=cpu", *flags])
            assert args.device == "cpu" and args.data_path == str(tmp_path / "data"), name


def test_the_bench_figures_are_the_benchs():
    from benchmarks.main import STEPS

    assert gpu_check.BENCH_FIGURES == STEPS


def test_a_subset_on_the_cpu(tmp_path):
    """The shell command as a user types it: eval_ensemble.py with the two trainings it reads, the
    gpu tests (skipped here, with their reason), the bench's matmul figure; one line each."""
    out = tmp_path / "check"
    result = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh"), "--device", "cpu", "--tiny",
                             "--modes", "fp32", "--scripts", "eval_ensemble.py", "--bench_only", "matmul",
                             "--out", str(out)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name in ("train.py", "train.py seed 2", "eval_ensemble.py"):
        assert any(re.fullmatch(rf"ok +{re.escape(name)} +fp32 +[\d.]+ s", line) for line in lines), (name, lines)
    assert not any(line.startswith(("FAIL", "skip")) for line in lines)
    tests = next(line for line in lines if "tests/test_gpu.py" in line)
    assert tests.startswith("ok") and "skipped" in tests and "CUDA" in tests, tests
    figures = json.loads((out / "bench.json").read_text())
    assert figures["matmul_gflops_fp32"] > 0 and figures["cpu_model"] and "torch_cpu_capability" in figures
    assert any(line.startswith("on ") and "CPU" in line for line in lines)  # the bench's table, last
    assert (out / "logs" / "fp32-eval_ensemble.py.log").is_file() and "all passed" in result.stdout


def test_a_failing_check_names_its_script_and_first_error_and_exits_1(tmp_path, capsys, monkeypatch):
    real = gpu_check.checks

    def broken(*args):  # hessian.py told an impossible number of images: its own error line
        return [(n, m, [*a, "--num_images=0"] if n == "hessian.py" else a, d) for n, m, a, d in real(*args)]

    monkeypatch.setattr(gpu_check, "checks", broken)
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--device=cpu", "--tiny", "--modes=fp32", "--scripts=hessian.py", "--no_tests",
                        "--no_bench", f"--out={tmp_path}"])
    assert exit_info.value.code == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(re.fullmatch(r"ok +train\.py +fp32 +[\d.]+ s", line) for line in lines), lines
    assert any(line.startswith("FAIL hessian.py fp32: error:") for line in lines), lines
    assert lines[-1].startswith("FAILED")


@pytest.mark.parametrize("argv, says", [
    (["--device=tpu"], "--device"), (["--device=cpu", "--modes=fp32 fp8"], "fp8"),
    (["--device=cpu", "--modes="], "--modes"), (["--device=cpu", "--scripts=train2.py"], "train2.py"),
    (["--device=cpu", "--bench_only=everything"], "--bench_only")])
def test_bad_input(tmp_path, capsys, argv, says):
    assert says in user_error(capsys, gpu_check.main, *argv, f"--out={tmp_path / 'out'}")
    assert not (tmp_path / "out").exists()


def test_no_gpu_says_use_the_cpu_and_a_foreign_folder_is_left_alone(tmp_path, capsys):
    import torch

    if not torch.cuda.is_available():
        assert "--device cpu" in user_error(capsys, gpu_check.main, f"--out={tmp_path / 'a'}")
        assert "no CUDA" in user_error(capsys, gpu_check.main, "--device=cuda", f"--out={tmp_path / 'a'}")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "results.csv").write_text("kept\n")
    assert "did not write" in user_error(capsys, gpu_check.main, "--device=cpu", f"--out={tmp_path / 'mine'}")
    assert (tmp_path / "mine" / "results.csv").read_text() == "kept\n"
