"""landscape.planes (basis, coordinates, weights at a point) and plane.py end to end, on tiny MLPs.

Checkpoints are written directly (random MLPs, no training): the plane's geometry and the
script's files do not need trained networks, and the whole file runs in a few seconds.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from conftest import user_error
import curves
import plane
import landscape
import runtime
from models import build_model

DIGITS_MLP = {"in_channels": 1, "image_size": 8}


def mlp(seed: int, num_classes: int = 10):
    torch.manual_seed(seed)
    return build_model("MLP", num_classes, hidden=16, **DIGITS_MLP)


def fields(num_classes: int = 10) -> dict:
    return dict(num_classes=num_classes, model_kwargs={**DIGITS_MLP, "hidden": 16}, dataset="DIGITS",
                transform="VGG", epoch=0, args={"wd": 3e-4})


def write_model(path, seed: int, model_name: str = "MLP", num_classes: int = 10) -> str:
    torch.manual_seed(seed)
    kwargs = {**DIGITS_MLP, "hidden": 16} if model_name == "MLP" else dict(DIGITS_MLP)
    model = build_model(model_name, num_classes, **kwargs)
    ckpt = runtime.model_checkpoint(model_name, model, **{**fields(num_classes), "model_kwargs": kwargs})
    runtime.save_checkpoint(str(path), ckpt)
    return str(path)


def make_curve(num_bends: int = 3, curve: str = "Bezier", linear: bool = False) -> curves.CurveModel:
    """A curve between two random MLPs; the middle bends off the segment unless ``linear``."""
    model = curves.CurveModel(mlp(0), curve, num_bends)
    model.load_bend(0, mlp(1).state_dict())
    model.load_bend(num_bends - 1, mlp(2).state_dict())
    model.init_linear()
    if not linear:  # move the middle bends off the segment, as training would
        torch.manual_seed(3)
        for k in range(1, num_bends - 1):
            state = landscape.bend_state(model.state_dict(), k)
            model.load_bend(k, {n: p + 0.05 * torch.randn_like(p) for n, p in state.items()})
    return model


def write_curve(path, **kwargs) -> str:
    runtime.save_checkpoint(str(path), curves.curve_checkpoint(make_curve(**kwargs), "MLP", **fields()))
    return str(path)


def plane_error(capsys, *argv) -> str:
    return user_error(capsys, plane.main, *argv)


# --------------------------------------------------------------------------- geometry

def three_points(n: int = 1000, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=g) for _ in range(3)]


def test_basis_puts_w0_at_origin_and_w2_on_the_x_axis():
    w0, w1, w2 = three_points()
    p = landscape.Plane(w0, w1, w2)
    assert torch.allclose(p.coordinates(w0), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    x2, y2 = p.coordinates(w2).tolist()
    assert x2 == pytest.approx(float((w2 - w0).norm()), rel=1e-6) and x2 == pytest.approx(p.dx)
    assert abs(y2) < 1e-9
    # u, v orthonormal; w1 above the axis at height dy
    assert float(p.u @ p.u) == pytest.approx(1) and float(p.v @ p.v) == pytest.approx(1)
    assert abs(float(p.u @ p.v)) < 1e-12
    assert p.coordinates(w1)[1].item() == pytest.approx(p.dy) and p.dy > 0


def test_weights_at_a_bends_coordinates_are_that_bend():
    w = three_points()
    p = landscape.Plane(*w)
    for wk in w:
        assert torch.allclose(p.point(*p.coordinates(wk).tolist()).float(), wk, atol=1e-5)
    # independently: a point given by its coordinates in the three points' affine frame
    x1, y1 = p.coordinates(w[1]).tolist()
    a, b = 0.3, 0.6  # w0 + a (w2 - w0) + b (w1 - w0) has coordinates (a dx + b x1, b y1)
    expected = w[0] + a * (w[2] - w[0]) + b * (w[1] - w[0])
    assert torch.allclose(p.point(a * p.dx + b * x1, b * y1).float(), expected, atol=1e-5)


def test_a_curve_bend_loaded_into_the_plain_model_by_name_is_that_bend():
    curve = make_curve()
    module = mlp(9)
    states = [landscape.bend_state(curve.state_dict(), k) for k in range(3)]
    p = landscape.Plane(*[landscape.flatten(s, module) for s in states])
    for k, state in enumerate(states):
        landscape.load_flat(module, p.point(*p.coordinates(landscape.flatten(state, module)).tolist()))
        for name, value in module.named_parameters():
            assert torch.allclose(value, state[name], atol=1e-5), (k, name)


def test_curve_points_are_the_coefficients_times_the_bend_coordinates():
    # what plane.py relies on: a 3-bend curve lies in its bends' plane
    curve = make_curve()
    module = mlp(9)
    p = landscape.Plane(*[landscape.flatten(landscape.bend_state(curve.state_dict(), k), module) for k in range(3)])
    bend_xy = torch.stack([p.coordinates(landscape.flatten(landscape.bend_state(curve.state_dict(), k), module))
                           for k in range(3)])
    for t in (0.1, 0.5, 0.8):
        w = landscape.flatten(curve.module_state(t), module)
        assert torch.allclose(p.coordinates(w), curves.bezier(t, 3).double() @ bend_xy, atol=1e-4)
        # and the point is in the plane: rebuilding it from its coordinates gives it back
        assert torch.allclose(p.point(*p.coordinates(w).tolist()).float(), w, atol=1e-5)


def test_collinear_points_span_no_plane():
    curve = make_curve(linear=True)  # an untrained curve: the middle bend on the segment
    module = mlp(9)
    w = [landscape.flatten(landscape.bend_state(curve.state_dict(), k), module) for k in range(3)]
    with pytest.raises(ValueError, match="collinear"):
        landscape.Plane(*w)


def test_contour_levels_are_log_spaced_above_the_minimum():
    values = np.array([[0.01, 0.02], [0.5, 3.0]])
    levels = landscape.contour_levels(values, count=5, smallest=1e-2)
    assert levels[0] == pytest.approx(0.01) and levels[-1] == pytest.approx(3.0)
    gaps = np.diff(levels[1:] - levels[0])
    assert np.all(np.diff(levels) > 0) and gaps[-1] > 10 * gaps[0]


# --------------------------------------------------------------------------- the script

KEYS = {"ts", "bend_coordinates", "curve_coordinates", "alphas", "betas", "grid", "tr_loss", "tr_nll",
        "tr_acc", "tr_err", "te_loss", "te_nll", "te_acc", "te_err"}


def test_plane_of_a_curve_writes_the_contracted_files(tmp_path):
    ckpt = write_curve(tmp_path / "curve.pt")
    out = tmp_path / "plane"
    plane.main([f"--dir={out}", f"--ckpt={ckpt}", "--use_test", "--grid_points=3", "--curve_points=5"])
    for name in ("plane.npz", "plane.png", "command.sh", "args.json", "summary.json", "metrics.csv"):
        assert (out / name).is_file(), name
    result = np.load(out / "plane.npz")
    assert set(result.files) == KEYS
    assert result["grid"].shape == (3, 3, 2) and result["tr_loss"].shape == (3, 3)
    assert result["curve_coordinates"].shape == (5, 2) and len(result["ts"]) == 5
    bends = result["bend_coordinates"]
    assert np.allclose(bends[0], 0, atol=1e-6) and abs(bends[2, 1]) < 1e-6
    assert np.allclose(result["curve_coordinates"][[0, -1]], bends[[0, 2]], atol=1e-6)
    assert np.allclose(result["alphas"], [-0.2, 0.5, 1.2]) and np.allclose(result["tr_err"], 100 - result["tr_acc"])
    # the train loss carries the L2 term with the checkpoint's wd
    assert np.all(result["tr_loss"] > result["tr_nll"]) and np.all(result["te_loss"] > result["te_nll"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["wd"] == 3e-4 and set(summary["points"]) >= {"bend 0", "bend 1", "bend 2", "segment t=0.5"}
    assert summary["points"]["bend 2"]["x"] == pytest.approx(summary["dx"])
    assert os.path.getsize(out / "plane.png") > 10_000


def test_plane_of_three_model_checkpoints(tmp_path):
    paths = [write_model(tmp_path / f"m{i}.pt", seed=i) for i in range(3)]
    out = tmp_path / "plane3"
    plane.main([f"--dir={out}", *[f"--ckpt={p}" for p in paths], "--use_test", "--grid_points=2",
                "--curve_points=3", "--wd=0"])
    result = np.load(out / "plane.npz")
    assert result["tr_loss"].shape == (2, 2) and np.allclose(result["tr_loss"], result["tr_nll"])
    # without a curve, the "curve" is the polygonal chain through the three points
    assert np.allclose(result["curve_coordinates"], result["bend_coordinates"], atol=1e-6)


def test_bad_input_is_one_error_line(tmp_path, capsys):
    model = write_model(tmp_path / "m.pt", seed=0)
    other = write_model(tmp_path / "o.pt", seed=1)
    convfc = write_model(tmp_path / "c.pt", seed=2, model_name="ConvFC")
    three_classes = write_model(tmp_path / "k.pt", seed=3, num_classes=3)
    curve = write_curve(tmp_path / "curve.pt")
    d = f"--dir={tmp_path / 'out'}"
    for num_bends in (2, 4):
        path = write_curve(tmp_path / f"curve{num_bends}.pt", num_bends=num_bends)
        assert "exactly" in plane_error(capsys, d, f"--ckpt={path}")
    assert "does not exist" in plane_error(capsys, d, f"--ckpt={tmp_path / 'missing.pt'}")
    assert "'model' checkpoint" in plane_error(capsys, d, f"--ckpt={model}")
    assert "2 times" in plane_error(capsys, d, f"--ckpt={model}", f"--ckpt={other}")
    assert "ConvFC" in plane_error(capsys, d, f"--ckpt={model}", f"--ckpt={other}", f"--ckpt={convfc}")
    assert "classes" in plane_error(capsys, d, f"--ckpt={model}", f"--ckpt={three_classes}", f"--ckpt={other}")
    assert "collinear" in plane_error(capsys, d, f"--ckpt={write_curve(tmp_path / 'lin.pt', linear=True)}")
    assert "contradicts" in plane_error(capsys, d, f"--ckpt={curve}", "--curve=PolyChain")
    assert "contradicts" in plane_error(capsys, d, f"--ckpt={curve}", "--dataset=CIFAR10")
    assert not (tmp_path / "out").exists()  # nothing written before the inputs were checked
