"""train_curve.py (and train.py --curve) and eval_curve.py end to end on DIGITS, resume, bad input.

A few runs go through a subprocess, as a user would; the rest call ``main`` in
this process (``cli.run`` gives the same exit status and ``error:`` line).
"""
import csv
import json
import os

import numpy as np
import pytest
import torch

import eval_curve
import train
import train_curve
import runtime
from conftest import random_checkpoint, assert_user_error, run_script, user_error
from models import build_model

DIGITS = ["--dataset=DIGITS", "--use_test", "--batch_size=128"]  # 12 steps an epoch


@pytest.fixture(scope="module")
def mlp_endpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("curve-endpoints")
    paths = []
    for seed in (1, 2):
        train.main([f"--dir={folder / str(seed)}", *DIGITS, "--model=MLP", "--epochs=2", "--lr=0.1",
                    f"--seed={seed}"])
        paths.append(str(folder / str(seed) / "checkpoint-2.pt"))
    return paths


@pytest.fixture(scope="module")
def mlp_curve(tmp_path_factory, mlp_endpoints):
    """The original README's curve command, through train.py, on DIGITS with an MLP."""
    folder = tmp_path_factory.mktemp("mlp-curve")
    run_script("train.py", f"--dir={folder}", "--dataset=DIGITS", "--use_test", "--transform=VGG",
               f"--data_path={folder / 'data'}", "--model=MLP", "--curve=Bezier", "--num_bends=3",
               f"--init_start={mlp_endpoints[0]}", f"--init_end={mlp_endpoints[1]}", "--fix_start",
               "--fix_end", "--epochs=2", "--lr=0.015", "--wd=5e-4", "--batch_size=128", "--save_freq=1")
    return folder


def test_train_curve_writes_the_contracted_files(mlp_curve, mlp_endpoints):
    assert {"command.sh", "args.json", "metrics.csv", "summary.json", "checkpoint-0.pt", "checkpoint-1.pt",
            "checkpoint-2.pt"} <= set(os.listdir(mlp_curve))
    summary = json.loads((mlp_curve / "summary.json").read_text())
    assert set(summary) == {"epoch", "train_loss", "train_acc"} and summary["epoch"] == 2
    with open(mlp_curve / "metrics.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    ckpt = runtime.load_checkpoint(str(mlp_curve / "checkpoint-2.pt"), kind="curve")
    assert (ckpt["curve"], ckpt["num_bends"], ckpt["fix_start"], ckpt["fix_end"]) == ("Bezier", 3, True, True)
    assert (ckpt["model"], ckpt["dataset"], ckpt["epoch"]) == ("MLP", "DIGITS", 2)
    start, end = (torch.load(p, weights_only=True)["model_state"] for p in mlp_endpoints)
    first = torch.load(mlp_curve / "checkpoint-0.pt", weights_only=True)["model_state"]
    for name in start:  # fixed ends stay the endpoints; the middle bend starts at their mean and moves
        assert torch.equal(ckpt["model_state"][f"bends.0.{name}"], start[name])
        assert torch.equal(ckpt["model_state"][f"bends.2.{name}"], end[name])
        assert torch.allclose(first[f"bends.1.{name}"], (start[name] + end[name]) / 2, atol=1e-6)
    assert not torch.equal(first["bends.1.net.1.weight"], ckpt["model_state"]["bends.1.net.1.weight"])


def test_resume_gives_the_same_weights(tmp_path):
    """PreResNet20 (BatchNorm, updated at t = 0.5 after every epoch): 2 epochs, or 1 and a resume.

    The resume goes through train.py without --curve: the checkpoint says it is a curve, and
    the curve's type, bends and fixed ends come from it."""
    ends = [random_checkpoint(tmp_path / f"{s}.pt", "PreResNet20", s) for s in (1, 2)]
    common = [*DIGITS, "--epochs=2", "--save_freq=1", "--lr=0.05", "--seed=3", "--batch_size=128"]
    curve = ["--curve=PolyChain", "--num_bends=3", f"--init_start={ends[0]}", f"--init_end={ends[1]}", "--fix_start"]
    train_curve.main([f"--dir={tmp_path / 'whole'}", *common, *curve])
    train.main([f"--dir={tmp_path / 'resumed'}", *common, f"--resume={tmp_path / 'whole' / 'checkpoint-1.pt'}"])
    whole = torch.load(tmp_path / "whole" / "checkpoint-2.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "checkpoint-2.pt", weights_only=True)
    assert whole["model_state"].keys() == resumed["model_state"].keys()
    for name in whole["model_state"]:
        assert torch.equal(whole["model_state"][name], resumed["model_state"][name]), name
    assert json.loads((tmp_path / "resumed" / "summary.json").read_text()) == \
        json.loads((tmp_path / "whole" / "summary.json").read_text())


def test_eval_curve_writes_the_contracted_files(tmp_path, mlp_curve, mlp_endpoints):
    out = tmp_path / "eval"
    run_script("eval_curve.py", f"--dir={out}", f"--ckpt={mlp_curve / 'checkpoint-2.pt'}", "--use_test",
               "--num_points=3", "--ensemble")
    assert {"curve.npz", "curve.csv", "curve.png", "summary.json", "metrics.csv"} <= set(os.listdir(out))
    arrays = np.load(out / "curve.npz")
    assert set(arrays.files) == set(eval_curve.COLUMNS)
    assert np.allclose(arrays["ts"], [0, 0.5, 1]) and arrays["dl"][0] == 0
    assert np.allclose(arrays["tr_err"], 100 - arrays["tr_acc"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["length"] == pytest.approx(arrays["dl"].sum())
    for name in ("train_loss", "train_err", "test_nll", "test_err"):
        assert set(summary[name]) == {"start", "end", "min", "max", "avg", "int"}
    # t = 0 and t = 1 are the endpoints: the test accuracies train.py reported for them
    for key, path in (("start", mlp_endpoints[0]), ("end", mlp_endpoints[1])):
        reported = json.loads(open(os.path.join(os.path.dirname(path), "summary.json")).read())
        assert summary["test_err"][key] == pytest.approx(100 - reported["test_acc"], abs=1e-6)
    assert 0 <= summary["ens_acc"] <= 100 and summary["ens_nll"] > 0
    with open(out / "curve.csv") as f:
        assert len(list(csv.DictReader(f))) == 3


def test_straight_segment(tmp_path):
    """Without --ckpt: the segment between two model checkpoints, a BatchNorm model here."""
    ends = [random_checkpoint(tmp_path / f"{s}.pt", "PreResNet20", s) for s in (1, 2)]
    eval_curve.main([f"--dir={tmp_path / 'seg'}", f"--init_start={ends[0]}", f"--init_end={ends[1]}",
                     "--use_test", "--num_points=3", "--batch_size=256"])
    summary = json.loads((tmp_path / "seg" / "summary.json").read_text())
    a, b = (torch.load(p, weights_only=True)["model_state"] for p in ends)
    names = [n for n, _ in build_model("PreResNet20", 10, in_channels=1, image_size=8).named_parameters()]
    distance = torch.linalg.vector_norm(torch.cat([(a[n] - b[n]).reshape(-1) for n in names])).item()
    assert summary["length"] == pytest.approx(distance, rel=1e-5)


def test_bad_input(tmp_path, capsys, mlp_endpoints, mlp_curve):
    mlp = mlp_endpoints[0]
    res = random_checkpoint(tmp_path / "res.pt", "PreResNet20", 1)
    five = random_checkpoint(tmp_path / "five.pt", "MLP", 1, num_classes=5)
    out = f"--dir={tmp_path / 'out'}"
    # a model checkpoint where a curve is expected, from the command line
    line = assert_user_error(run_script("eval_curve.py", out, f"--ckpt={mlp}", check=False))
    assert "'model' checkpoint" in line
    curve = ["--curve=Bezier", f"--init_start={mlp}", *DIGITS]
    assert "MLP" in user_error(capsys, train_curve.main, out, *curve, f"--init_end={res}")
    assert "classes" in user_error(capsys, train_curve.main, out, *curve, f"--init_end={five}")
    assert "2 bends" in user_error(capsys, train_curve.main, out, *curve, f"--init_end={mlp}", "--num_bends=1")
    assert "init_end" in user_error(capsys, train_curve.main, out, *curve, "--fix_end")
    assert "'model'" in user_error(capsys, train_curve.main, out, *DIGITS, f"--resume={mlp}")
    assert "--curve" in user_error(capsys, train_curve.main, out, *DIGITS, f"--init_start={mlp}")
    ckpt = f"--ckpt={mlp_curve / 'checkpoint-2.pt'}"
    assert "contradicts" in user_error(capsys, eval_curve.main, out, ckpt, "--curve=PolyChain")
    assert "MLP" in user_error(capsys, eval_curve.main, out, ckpt, "--model=ConvFC")
    assert "--init_end" in user_error(capsys, eval_curve.main, out, f"--init_start={mlp}")
    assert "not both" in user_error(capsys, eval_curve.main, out, ckpt, f"--init_start={mlp}", f"--init_end={mlp}")
    assert "at least 2" in user_error(capsys, eval_curve.main, out, ckpt, "--num_points=1")
    assert "classes" in user_error(capsys, eval_curve.main, out, f"--init_start={mlp}", f"--init_end={five}",
                                   "--dataset=DIGITS")
