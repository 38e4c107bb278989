"""Data parallelism with torchrun: 2 gloo processes on this CPU against one process.

The processes share each global batch of --batch_size images, so a BatchNorm-free model
trains to the same weights (to float rounding), a curve's t is the same on both in every
step, and evaluations and BatchNorm updates combine both processes' images.
"""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, random_checkpoint, run_here

DIGITS = ["--dataset=DIGITS", "--use_test", "--batch_size=32", "--lr=0.05"]


def torchrun(script: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               os.path.join(ROOT, script), *map(str, args)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"))
    if check and result.returncode != 0:
        raise AssertionError(f"torchrun {script} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def state(path) -> dict:
    return torch.load(path, weights_only=True)["model_state"]


def assert_close_weights(a, b, atol=1e-6) -> None:
    wa, wb = state(a), state(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=atol, rtol=1e-5, msg=name)


def summary(folder) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_two_processes_train_as_one(tmp_path):
    common = ["train.py", *DIGITS, "--model=MLP", "--epochs=2", "--save_freq=1"]
    run_here(*common, f"--dir={tmp_path / 'one'}")
    result = torchrun(*common, f"--dir={tmp_path / 'two'}")
    assert_close_weights(tmp_path / "one" / "checkpoint-2.pt", tmp_path / "two" / "checkpoint-2.pt")
    one, two = summary(tmp_path / "one"), summary(tmp_path / "two")
    assert two == pytest.approx(one, rel=1e-5)  # the evaluations: all images, once
    # one set of run files, written by rank 0, and one table printed
    assert sorted(os.listdir(tmp_path / "one")) == sorted(os.listdir(tmp_path / "two"))
    assert result.stdout.count("tr_loss") == 1
    # the checkpoint of two processes continues in one
    run_here("train.py", f"--resume={tmp_path / 'two'}", "--epochs=3")
    run_here("train.py", f"--resume={tmp_path / 'one'}", "--epochs=3")
    assert_close_weights(tmp_path / "one" / "checkpoint-3.pt", tmp_path / "two" / "checkpoint-3.pt", atol=1e-5)


def test_a_curves_t_is_the_same_on_both_processes(tmp_path):
    """Were the t's of a step different, the averaged gradient would be no single process's."""
    ends = [random_checkpoint(tmp_path / f"{seed}.pt", "MLP", seed) for seed in (1, 2)]
    common = ["train_curve.py", *DIGITS, "--curve=Bezier", f"--init_start={ends[0]}", f"--init_end={ends[1]}",
              "--fix_start", "--fix_end", "--epochs=2"]
    run_here(*common, f"--dir={tmp_path / 'one'}")
    torchrun(*common, f"--dir={tmp_path / 'two'}")
    assert_close_weights(tmp_path / "one" / "checkpoint-2.pt", tmp_path / "two" / "checkpoint-2.pt")


def test_batchnorm_updates_and_evaluations_combine_both_processes(tmp_path):
    """The straight segment between two PreResNet20s: BatchNorm recomputed at every point from the
    global batches, train and test figures over all images: one process's figures."""
    ends = [random_checkpoint(tmp_path / f"{seed}.pt", "PreResNet20", seed) for seed in (1, 2)]
    common = ["eval_curve.py", "--use_test", f"--init_start={ends[0]}", f"--init_end={ends[1]}", "--num_points=2",
              "--batch_size=128"]
    run_here(*common, f"--dir={tmp_path / 'one'}")
    torchrun(*common, f"--dir={tmp_path / 'two'}")
    rows = {}
    for name in ("one", "two"):
        with open(tmp_path / name / "curve.csv") as f:
            rows[name] = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    for a, b in zip(rows["one"], rows["two"]):
        assert b == pytest.approx(a, rel=1e-4, abs=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_batch_size_that_does_not_divide_is_one_error_and_status_2_on_every_process(tmp_path):
    """The processes torchrun would start (its environment variables), each watched."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), "--dataset=DIGITS", "--model=MLP",
                               "--batch_size=33", f"--dir={tmp_path}"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=ROOT, WORLD_SIZE="2", RANK=str(rank),
                                       LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)))
             for rank in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [2, 2]
    errors = [line for _, err in outputs for line in err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:") and "divide" in errors[0], errors
    assert not os.listdir(tmp_path)


def test_float16_autocast_with_a_gradient_scaler_on_cpu(tmp_path):
    """The V100/T4 path (float16 and torch.amp.GradScaler), on this CPU: it trains as float32 does."""
    common = ["train.py", "--dataset=DIGITS", "--use_test", "--model=MLP", "--epochs=1", "--lr=0.05"]
    run_here(*common, f"--dir={tmp_path / 'fp32'}")
    run_here(*common, "--amp", "--amp_dtype=float16", f"--dir={tmp_path / 'fp16'}")
    ckpt = torch.load(tmp_path / "fp16" / "checkpoint-1.pt", weights_only=True)
    assert ckpt["args"]["amp_dtype"] == "float16"
    assert ckpt["scaler_state"]["_growth_tracker"] == 45  # every one of the 45 steps taken, none skipped
    assert summary(tmp_path / "fp16")["test_acc"] == pytest.approx(summary(tmp_path / "fp32")["test_acc"], abs=2)


def test_amp_picks_bfloat16_where_the_device_has_it_and_float16_elsewhere(monkeypatch):
    import runtime

    assert runtime.amp_dtype(torch.device("cpu"), True) == "bfloat16"
    assert runtime.amp_dtype(torch.device("cpu"), False) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert runtime.amp_dtype(torch.device("cuda", 0), True) == "float16"  # V100, T4
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert runtime.amp_dtype(torch.device("cuda", 0), True) == "bfloat16"  # A100, H100


@pytest.mark.parametrize("flags, dtype, warned", [
    ("fpu avx2 fma", "bfloat16", True), ("avx2 avx512f avx512_bf16", "bfloat16", False),
    ("avx512f amx_bf16 amx_tile", "bfloat16", False), ("avx512f avx512_bf16", "float16", True),
    ("avx512_fp16", "float16", False)])
def test_amp_on_a_cpu_that_emulates_the_half_precision_says_so(monkeypatch, capsys, flags, dtype, warned):
    """On an x86 CPU without its half precision's instructions (/proc/cpuinfo), --amp runs it emulated,
    15x slower than fp32 for VGG16 on an AVX2 EPYC: one warning line; none with them, none without --amp."""
    import argparse
    import platform

    import runtime
    import runtime.processes

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(runtime.processes, "cpu_info", lambda: {"model name": "a CPU", "flags": flags})
    for amp in (True, False):
        args = argparse.Namespace(device="cpu", amp=amp, amp_dtype=dtype)
        runtime.start_processes(args)
        said = capsys.readouterr().out.splitlines()
        assert said == ([f"warning: --amp: this CPU computes no {dtype} natively (none of "
                         f"{', '.join(runtime.processes.NATIVE_HALF[dtype])} in /proc/cpuinfo), so it is "
                         "emulated, many times slower than fp32 (a VGG16 epoch: 15x on an AVX2 EPYC); leave "
                         "--amp off on this machine"] if warned and amp else []), (flags, dtype, amp)
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")  # other flags there: nothing is said
    assert not runtime.processes.emulated_on_this_cpu("bfloat16")


def test_loader_shares_cover_each_global_batch_once():
    """Every image of an epoch goes to exactly one process, in the single process's batches."""
    import data

    images = data.ImageSet(torch.randint(0, 255, (70, 1, 8, 8), dtype=torch.uint8), torch.arange(70))
    single = data.Loader(images, 16, (0.5,), (0.5,), shuffle=True, augment=True, padding=1, seed=3)
    shards = [data.Loader(images, 16, (0.5,), (0.5,), shuffle=True, augment=True, padding=1, seed=3, rank=r,
                          world_size=3) for r in range(3)]
    for (x, y), *parts in zip(single, *shards):
        torch.testing.assert_close(torch.cat([p[0] for p in parts]), x)
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
    assert [single.global_batch_size(s) for s in range(len(single))] == [16, 16, 16, 16, 6]
