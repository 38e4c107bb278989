"""rays.py (random rays from checkpoints, the width of their minima) and eval_curve.py's line beyond
the segment's ends (--t_min/--t_max), end to end on DIGITS with tiny BatchNorm-free MLPs.

The figures are checked against computations written out here: the direction drawn by the
documented rule, the network at w + r d or at 2 w_1 - w_0 run by hand on the images, the width
found from the script's own rows. The runs are in this process but the stopped and killed ones.
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cli
import curves
import data
import eval_curve
import models
import rays
import runtime
from conftest import ROOT, user_error

MLP = {"in_channels": 1, "image_size": 8, "hidden": 16}
WD = 5e-4


def write_mlp(path, seed: int, wd: float = WD, dataset: str = "DIGITS", use_test: bool = False, **kwargs) -> str:
    """A random MLP's 'model' checkpoint for DIGITS, as if trained with --wd and the split given."""
    torch.manual_seed(seed)
    net = models.build_model("MLP", 10, **MLP)
    runtime.save_checkpoint(str(path), runtime.model_checkpoint(
        "MLP", net, num_classes=10, model_kwargs=dict(MLP), dataset=dataset, transform="VGG", epoch=0,
        args={"wd": wd, "use_test": use_test}, **kwargs))
    return str(path)


def rows_of(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plain_images(split: str, use_test: bool = False):
    """DIGITS' images of ``split`` as the scripts normalise them (VGG constants), with their labels."""
    dataset = data.load_dataset("DIGITS", use_test=use_test)
    images = getattr(dataset, split)
    (mean,), (std,) = data.normalisation("VGG", 1)
    return (images.images.float() / 255 - mean) / std, images.labels


def nll_at(state: dict, x, y) -> float:
    """The mean cross-entropy of an MLP with the parameters ``state`` (by name), run by hand."""
    net = models.build_model("MLP", 10, **MLP)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(state[name])
        return float(F.cross_entropy(net.eval()(x), y))


def sphere_direction_by_the_rule(state: dict, seed: int, index: int) -> dict:
    """Direction ``index`` as rays.py's --help and landscape/rays.py state it: a torch generator seeded by
    numpy's SeedSequence((seed, index), spawn_key=(0,)), standard normal draws parameter by parameter in
    the network's order, all divided by their norm over all weights together."""
    seed64 = int(np.random.SeedSequence([seed, index], spawn_key=(0,)).generate_state(1, np.uint64)[0])
    g = torch.Generator().manual_seed(seed64)
    draws = {name: torch.randn(t.shape, generator=g, dtype=torch.float32) for name, t in state.items()}
    total = math.sqrt(sum(float(t.double().pow(2).sum()) for t in draws.values()))
    return {name: t.double() / total for name, t in draws.items()}


def width_by_hand(distances: list[float], losses: list[float], rise: float):
    """The first distance where the loss reaches losses[0] + rise, linear between the points; None if never."""
    target = losses[0] + rise
    for i in range(1, len(losses)):
        if losses[i] >= target:
            r0, r1, l0, l1 = distances[i - 1], distances[i], losses[i - 1], losses[i]
            return r0 + (target - l0) / (l1 - l0) * (r1 - r0)
    return None


@pytest.fixture(scope="module")
def mlps(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rays-mlps")
    return [write_mlp(folder / f"mlp{s}.pt", s) for s in (1, 2)]


# --------------------------------------------------------------------------- rays.py

RAYS = ["--num_directions=3", "--max_distance=24", "--num_points=5", "--rise=0.05", "--device=cpu"]


@pytest.fixture(scope="module")
def rays_run(tmp_path_factory, mlps):
    out = tmp_path_factory.mktemp("rays") / "run"
    cli.run(rays.main, [f"--dir={out}", f"--ckpt={mlps[0]}", f"--ckpt={mlps[1]}", *RAYS, "--train_eval=plain",
                        "--seed=3"])
    return out


def test_rays_rows_files_and_summary(rays_run, mlps, capsys):
    rows = rows_of(rays_run / "metrics.csv")
    assert list(rows[0]) == ["checkpoint", "direction", "distance", "tr_loss", "tr_nll", "tr_acc", "tr_err",
                             "te_loss", "te_nll", "te_acc", "te_err"]
    # one row per checkpoint, direction and distance, in that order
    assert [(int(r["checkpoint"]), int(r["direction"]), float(r["distance"])) for r in rows] == \
        [(c, j, r) for c in range(2) for j in range(3) for r in (0.0, 6.0, 12.0, 18.0, 24.0)]
    assert {"metrics.csv", "rays.npz", "rays.png", "summary.json", "command.sh", "args.json"} <= set(os.listdir(rays_run))
    summary = json.loads((rays_run / "summary.json").read_text())
    assert summary["wd"] == WD and summary["rise"] == 0.05 and summary["directions"] == "shared"
    arrays = np.load(rays_run / "rays.npz")
    assert arrays["tr_loss"].shape == (2, 3, 5) and list(arrays["distances"]) == [0.0, 6.0, 12.0, 18.0, 24.0]
    assert list(arrays["checkpoints"]) == mlps
    for c, ckpt in enumerate(summary["checkpoints"]):
        assert ckpt["path"] == mlps[c]
        first = [r for r in rows if int(r["checkpoint"]) == c and float(r["distance"]) == 0.0]
        assert len(first) == 3 and all(r == first[0] | {"direction": r["direction"]} for r in first)  # one point
        assert ckpt["train_loss"] == float(first[0]["tr_loss"]) and ckpt["test_err"] == float(first[0]["te_err"])
        for key in ("tr_loss", "te_err"):
            assert np.array_equal(arrays[key][c].ravel(), [float(r[key]) for r in rows if int(r["checkpoint"]) == c])
    cli.run(rays.main, [f"--dir={rays_run}", f"--ckpt={mlps[0]}", f"--ckpt={mlps[1]}", *RAYS, "--train_eval=plain",
                        "--seed=3"])
    assert "nothing to do" in capsys.readouterr().out  # a finished run is left as it is


def test_rays_width_against_its_own_rows(rays_run):
    rows, summary = rows_of(rays_run / "metrics.csv"), json.loads((rays_run / "summary.json").read_text())
    distances = [0.0, 6.0, 12.0, 18.0, 24.0]
    found = 0
    for c in range(2):
        curves_ = [[float(r["tr_loss"]) for r in rows if int(r["checkpoint"]) == c and int(r["direction"]) == j]
                   for j in range(3)]
        mean = [sum(curve[k] for curve in curves_) / 3 for k in range(5)]
        expected = width_by_hand(distances, mean, 0.05)
        assert summary["width"][c] == pytest.approx(expected, rel=1e-12) if expected else summary["width"][c] is None
        assert summary["checkpoints"][c]["width"] == summary["width"][c]
        for j, curve in enumerate(curves_):
            by_hand = width_by_hand(distances, curve, 0.05)
            assert summary["checkpoints"][c]["direction_widths"][j] == (pytest.approx(by_hand, rel=1e-12)
                                                                        if by_hand else None)
        found += expected is not None
        nll = [sum(float(r["tr_nll"]) for r in rows if (int(r["checkpoint"]), float(r["distance"])) == (c, d)) / 3
               for d in distances]  # the train NLL alone, without the L2 term
        by_hand = width_by_hand(distances, nll, 0.05)
        assert summary["nll_width"][c] == (pytest.approx(by_hand, rel=1e-12) if by_hand else None)
        assert summary["checkpoints"][c]["nll_width"] == summary["nll_width"][c]
    assert found == 2  # the losses do rise within 24 here: the rule is tested, not only the null
    assert 0 < summary["width"][0] < 24


def test_rays_points_lie_at_their_distance_along_the_stated_directions(rays_run, mlps):
    """Row (checkpoint 1, direction 2, distance 24) is the MLP at w + 24 d, d drawn by the documented rule
    (shared by both checkpoints), evaluated by hand on DIGITS' training and test images as they are."""
    rows = rows_of(rays_run / "metrics.csv")
    x_train, y_train = plain_images("train")
    x_test, y_test = plain_images("test")
    for c, j, k in ((1, 2, 4), (0, 2, 2)):
        state = {n: t.double() for n, t in torch.load(mlps[c], weights_only=True)["model_state"].items()}
        r = [0.0, 6.0, 12.0, 18.0, 24.0][k]
        d = sphere_direction_by_the_rule(state, seed=3, index=j)
        step = {n: r * d[n] for n in state}
        assert math.sqrt(sum(float(t.pow(2).sum()) for t in step.values())) == pytest.approx(r, rel=1e-12)
        point = {n: (state[n] + step[n]).float() for n in state}
        row = rows[(c * 3 + j) * 5 + k]
        assert (int(row["checkpoint"]), int(row["direction"]), float(row["distance"])) == (c, j, r)
        l2 = 0.5 * WD * sum(float(t.double().pow(2).sum()) for t in point.values())
        assert float(row["tr_nll"]) == pytest.approx(nll_at(point, x_train, y_train), rel=1e-5)
        assert float(row["tr_loss"]) == pytest.approx(nll_at(point, x_train, y_train) + l2, rel=1e-5)
        assert float(row["te_nll"]) == pytest.approx(nll_at(point, x_test, y_test), rel=1e-5)


def test_rays_null_width_where_the_loss_never_rises_enough(tmp_path, mlps):
    out = tmp_path / "flat"
    cli.run(rays.main, [f"--dir={out}", f"--ckpt={mlps[0]}", "--num_directions=2", "--max_distance=1",
                        "--num_points=2", "--rise=10", "--device=cpu"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["width"] == [None] and summary["checkpoints"][0]["direction_widths"] == [None, None]
    assert summary["nll_width"] == [None]
    assert np.isinf(np.load(out / "rays.npz")["width"]).all()


# ----------------------------------------------------------------------- stopped, killed, continued

def _rows_on_disk(path) -> int:
    return len(open(path).read().splitlines()) - 1 if os.path.isfile(path) else 0


def _signal_after(path, count: int, sig) -> threading.Thread:
    """Send this process ``sig`` once metrics.csv has more than ``count`` rows (the run in it stops)."""
    def watch():
        deadline = time.time() + 120
        while time.time() < deadline:
            if _rows_on_disk(path) > count:
                os.kill(os.getpid(), sig)
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_rays_stopped_and_killed_continue_to_the_uninterrupted_result(tmp_path, mlps, capsys):
    """SIGTERM and SIGUSR1 stop after a point (exit 75), SIGKILL anywhere; the same command again
    continues, the training images augmented (each point its own draws), to the uninterrupted files."""
    command = [f"--ckpt={mlps[0]}", f"--ckpt={mlps[1]}", "--num_directions=4", "--max_distance=20",
               "--num_points=8", "--device=cpu"]
    whole = tmp_path / "whole"
    cli.run(rays.main, [f"--dir={whole}", *command])
    total = 2 * 4 * 8

    folder = tmp_path / "stopped"
    metrics = folder / "metrics.csv"
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        for sig, after in ((signal.SIGTERM, 5), (signal.SIGUSR1, 20)):  # of 64 rows
            watcher = _signal_after(metrics, after, sig)
            with pytest.raises(SystemExit) as stop:
                cli.run(rays.main, [f"--dir={folder}", *command])
            watcher.join()
            assert stop.value.code == runtime.EXIT_REQUEUE
            assert "start the same command again" in capsys.readouterr().err
            assert after < _rows_on_disk(metrics) < total and not (folder / "summary.json").exists()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)

    stopped = _rows_on_disk(metrics)
    run = subprocess.Popen([sys.executable, os.path.join(ROOT, "rays.py"), f"--dir={folder}", *command], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while _rows_on_disk(metrics) <= stopped + 4:
        assert run.poll() is None, run.stderr.read()
        assert time.time() < deadline, "the continued run wrote no rows"
        time.sleep(0.005)
    run.kill()  # at any moment: in a point, or writing a row
    run.wait()
    assert not (folder / "summary.json").exists()

    cli.run(rays.main, [f"--dir={folder}", *command])
    assert metrics.read_text() == (whole / "metrics.csv").read_text()
    assert json.loads((folder / "summary.json").read_text()) == json.loads((whole / "summary.json").read_text())
    a, b = np.load(folder / "rays.npz"), np.load(whole / "rays.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a.files)
    assert len((folder / "command.sh").read_text().splitlines()) == 5  # #!/bin/sh and four commands


# --------------------------------------------------------------------------- bad input

def test_rays_bad_inputs(tmp_path, capsys, mlps):
    conv = tmp_path / "conv.pt"
    torch.manual_seed(0)
    runtime.save_checkpoint(str(conv), runtime.model_checkpoint(
        "ConvFC", models.build_model("ConvFC", 10, in_channels=1, image_size=8), num_classes=10,
        model_kwargs={"in_channels": 1, "image_size": 8}, dataset="DIGITS", transform="VGG", epoch=0))
    cifar = write_mlp(tmp_path / "cifar.pt", 3, dataset="CIFAR10")
    held_in = write_mlp(tmp_path / "all.pt", 4, use_test=True)
    other_wd = write_mlp(tmp_path / "wd.pt", 5, wd=1e-3)
    curve = tmp_path / "curve.pt"
    runtime.save_checkpoint(str(curve), {"kind": "curve", "model": "MLP", "model_state": {}})
    out = tmp_path / "out"
    ok = [f"--ckpt={mlps[0]}", "--max_distance=1"]
    cases = {
        "does not exist": [f"--ckpt={tmp_path / 'missing.pt'}", "--max_distance=1"],
        "'curve' checkpoint": [f"--ckpt={curve}", "--max_distance=1"],
        "--max_distance": [f"--ckpt={mlps[0]}"],
        "not a positive number": [*ok[:1], "--max_distance=0"],
        "positive": [*ok, "--rise=-1"],
        "at least 2 points": [*ok, "--num_points=1"],
        "--num_directions": [*ok, "--num_directions=0"],
        "differ in model": [*ok, f"--ckpt={conv}"],
        "differ in dataset": [*ok, f"--ckpt={cifar}"],
        "different splits": [*ok, f"--ckpt={held_in}"],
        "different --wd": [*ok, f"--ckpt={other_wd}"],
        "contradicts": [*ok, "--use_test"],
    }
    for expected, argv in cases.items():
        assert expected in user_error(capsys, rays.main, f"--dir={out}", "--device=cpu", *argv)
        assert not out.exists()  # nothing written


# --------------------------------------------------------------------------- eval_curve.py beyond the ends

def test_line_points_hold_zero_and_one():
    assert np.array_equal(curves.line_points(0.0, 1.0, 61), np.linspace(0.0, 1.0, 61))  # the default, unchanged
    assert curves.line_points(-1.0, 2.0, 7).tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    np.testing.assert_allclose(curves.line_points(-1.0, 2.0, 61), np.linspace(-1.0, 2.0, 61), rtol=0, atol=1e-15)
    # 9 intervals over pieces of lengths 0.3, 1 and 0.2: 1.8, 6 and 1.2 by proportion -> 2, 6, 1
    ts = curves.line_points(-0.3, 1.2, 10)
    assert len(ts) == 10 and 0.0 in ts and 1.0 in ts and np.all(np.diff(ts) > 0)
    np.testing.assert_allclose(np.diff(ts), [0.15] * 2 + [1 / 6] * 6 + [0.2])
    with pytest.raises(ValueError, match="hold 0 and 1"):
        curves.line_points(0.2, 2.0, 10)
    with pytest.raises(ValueError, match="4 at least"):
        curves.line_points(-1.0, 2.0, 3)


def test_polychain_clamps_where_the_line_goes_on():
    """Why the segment's points beyond its ends take curves.line: the 2-bend PolyChain is (0, 0) at t = 2."""
    assert curves.polychain(2.0, 2).tolist() == [0.0, 0.0]
    assert curves.line(2.0).tolist() == [-1.0, 2.0] and curves.line(-1.0).tolist() == [2.0, -1.0]


def test_eval_curve_beyond_the_ends(tmp_path, mlps):
    out = tmp_path / "line"
    eval_curve.main([f"--dir={out}", f"--init_start={mlps[0]}", f"--init_end={mlps[1]}", "--t_min=-1", "--t_max=2",
                     "--num_points=7", "--train_eval=plain", "--device=cpu"])
    with open(out / "curve.csv", newline="") as f:
        records = list(csv.DictReader(f))
    assert [float(r["t"]) for r in records] == [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    arrays = np.load(out / "curve.npz")
    assert arrays["ts"].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert (out / "curve.png").stat().st_size > 0
    w0, w1 = ({n: t.double() for n, t in torch.load(p, weights_only=True)["model_state"].items()} for p in mlps)
    x_train, y_train = plain_images("train")
    x_test, y_test = plain_images("test")
    # t = 2 is 2 w_1 - w_0 and t = -1 is 2 w_0 - w_1, the L2 term theirs: evaluated by hand
    for index, (a, b) in ((6, (-1.0, 2.0)), (0, (2.0, -1.0))):
        point = {n: (a * w0[n] + b * w1[n]).float() for n in w0}
        l2 = 0.5 * WD * sum(float(t.double().pow(2).sum()) for t in point.values())
        nll = nll_at(point, x_train, y_train)
        assert float(records[index]["tr_nll"]) == pytest.approx(nll, rel=1e-5)
        assert float(records[index]["tr_loss"]) == pytest.approx(nll + l2, rel=1e-5)
        assert float(records[index]["te_nll"]) == pytest.approx(nll_at(point, x_test, y_test), rel=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    for name, key in eval_curve.SUMMARY.items():  # start and end: the two networks, at t = 0 and t = 1
        assert summary[name]["start"] == float(records[2][key]) and summary[name]["end"] == float(records[4][key])
        assert summary[name]["max"] == max(float(r[key]) for r in records)
    distance = math.sqrt(sum(float((w1[n] - w0[n]).pow(2).sum()) for n in w0))
    assert summary["length"] == pytest.approx(3 * distance, rel=1e-5)


def test_eval_curve_beyond_the_ends_bad_inputs(tmp_path, capsys, mlps):
    from test_plane import write_curve

    curve = write_curve(tmp_path / "curve.pt")
    out = tmp_path / "out"
    segment = [f"--init_start={mlps[0]}", f"--init_end={mlps[1]}"]
    cases = {
        "defined for t in [0, 1]": [f"--ckpt={curve}", "--t_max=2"],
        "hold 0 and 1": [*segment, "--t_min=0.5"],
        "4 at least": [*segment, "--t_min=-1", "--t_max=2", "--num_points=3"],
    }
    for expected, argv in cases.items():
        assert expected in user_error(capsys, eval_curve.main, f"--dir={out}", "--device=cpu", *argv)
        assert not out.exists()
    assert "--t_max" in user_error(capsys, eval_curve.main, f"--dir={out}", *segment, "--t_max=nope")
