"""landscape/: directions by name, rays and the width rule, and the Hessian against the exact one.

The exact Hessian of a tiny network (53 parameters, float64) comes from torch.func.hessian of a
forward written out by hand (BatchNorm with its running statistics), not from our operator.
"""
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import hessian

import landscape
from landscape import directions, hessian as lh


# --------------------------------------------------------------------------- a tiny network

def tiny_net() -> nn.Module:
    """Linear 4->5, BatchNorm1d, tanh, linear 5->3: 53 parameters, running statistics set apart from 0/1."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3)).double()
    with torch.no_grad():
        bn = net[2]
        bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.3, 0.3)
    return net


def tiny_data(n=12):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 2, 2, generator=g, dtype=torch.float64) * 2, torch.randint(0, 3, (n,), generator=g)


def exact_hessian(net, x, y) -> torch.Tensor:
    """(53, 53): the Hessian of the mean cross-entropy, the forward written out with the running statistics."""
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    bn = net[2]

    def loss(w):
        p = dict(zip(names, (t.view(s) for t, s in zip(w.split([math.prod(s) for s in shapes]), shapes))))
        h = x.flatten(1) @ p["1.weight"].T + p["1.bias"]
        h = (h - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * p["2.weight"] + p["2.bias"]
        logits = torch.tanh(h) @ p["4.weight"].T + p["4.bias"]
        return F.cross_entropy(logits, y)

    w = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    return hessian(loss)(w)


@pytest.fixture(scope="module")
def tiny():
    net = tiny_net()
    x, y = tiny_data()
    return net, x, y, exact_hessian(net, x, y)


# --------------------------------------------------------------------------- Hessian

def test_hvp_is_the_exact_hessian_times_v_in_eval_mode(tiny):
    net, x, y, H = tiny
    net.train()
    before = {k: b.clone() for k, b in net.state_dict().items()}
    op = lh.HessianOperator(net, [(x, y)])
    v = torch.randn(op.numel, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert op.numel == 53 and not net.training
    torch.testing.assert_close(op(v), H @ v, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(op(2 * v), 2 * (H @ v), rtol=1e-10, atol=1e-12)  # the kept graph, used again
    for k, b in net.state_dict().items():  # running statistics read, never updated
        assert torch.equal(b, before[k]), k


def test_chunked_hvp_is_the_mean_over_all_images(tiny):
    """Chunks of 5, 4 and 3 images weighted by their sizes: the Hessian of the mean over the 12."""
    net, x, y, H = tiny
    v = torch.randn(53, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    whole = lh.HessianOperator(net, [(x, y)])(v)
    chunks = [(x[:5], y[:5]), (x[5:9], y[5:9]), (x[9:], y[9:])]
    for retain in (True, False):
        op = lh.HessianOperator(net, chunks, retain_graphs=retain)
        assert op.num_images == 12
        torch.testing.assert_close(op(v), whole, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(whole, H @ v, rtol=1e-10, atol=1e-12)


def test_top_eigenvalues_of_the_network_are_eigvalsh_s(tiny):
    net, x, y, H = tiny
    exact = torch.linalg.eigvalsh(H).flip(0).tolist()  # descending
    op = lh.HessianOperator(net, [(x, y)])
    found = lh.top_eigenvalues(op, op.like(), k=2, max_iter=500, tol=1e-10, seed=0)
    assert [e.converged for e in found] == [True, True]
    assert [e.value for e in found] == pytest.approx(exact[:2], rel=1e-6)
    for e in found:  # unit eigenvectors
        assert float(e.vector.norm()) == pytest.approx(1.0)
        torch.testing.assert_close(H @ e.vector, e.value * e.vector, rtol=0, atol=1e-4)


def test_power_iteration_finds_the_largest_magnitudes_sorted_descending():
    """The documented rule, on a matrix with a known spectrum: the three largest in magnitude are
    4, -3 and 2 (by value the top three are 4, 2 and 1), returned sorted: [4, 2, -3]."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=torch.float64))
    spectrum = torch.tensor([4.0, -3.0, 2.0] + [1.0 - 0.03 * i for i in range(27)], dtype=torch.float64)
    a = q @ torch.diag(spectrum) @ q.T
    found = lh.top_eigenvalues(lambda v: a @ v, torch.zeros(30, dtype=torch.float64), k=3, max_iter=1000, tol=1e-12)
    assert [e.value for e in found] == pytest.approx([4.0, 2.0, -3.0], rel=1e-6)


def test_pyhessian_stopping_rule_and_defaults():
    """PyHessian: at most 100 iterations, stop at a relative change of the estimate below 1e-3."""
    assert (lh.MAX_ITER, lh.TOL) == (100, 1e-3)
    a = torch.diag(torch.tensor([1.0, 0.999], dtype=torch.float64))  # a gap too small to converge in 3
    (e,) = lh.top_eigenvalues(lambda v: a @ v, torch.zeros(2, dtype=torch.float64), max_iter=3, tol=1e-15)
    assert e.iterations == 3 and not e.converged
    (e,) = lh.top_eigenvalues(lambda v: 2.0 * v, torch.zeros(5, dtype=torch.float64))
    assert e.value == pytest.approx(2.0) and e.iterations == 2 and e.converged  # no change at the 2nd


def test_hutchinson_trace_of_the_network(tiny):
    net, x, y, H = tiny
    op = lh.HessianOperator(net, [(x, y)])
    trace = lh.hutchinson_trace(op, op.like(), max_iter=200, tol=0.0, seed=0)  # tol 0: all 200 samples
    assert len(trace.samples) == 200 and not trace.converged
    assert trace.estimate == pytest.approx(np.mean(trace.samples))
    assert trace.stderr == pytest.approx(np.std(trace.samples, ddof=1) / math.sqrt(200))
    assert abs(trace.estimate - float(H.trace())) < 4 * trace.stderr
    # each sample is v^T H v of a Rademacher v, drawn in turn from the seeded generator
    g = torch.Generator().manual_seed(0)
    for sample in trace.samples[:3]:
        v = lh.rademacher(op.like(), g)
        assert sample == pytest.approx(float(v @ H @ v), rel=1e-9)


def test_rademacher_vectors_and_the_trace_stopping_rule():
    v = lh.rademacher(torch.zeros(20000), torch.Generator().manual_seed(0))
    assert set(v.unique().tolist()) == {-1.0, 1.0} and abs(float(v.mean())) < 0.03
    # identity: every sample is exactly n, so the mean stops changing at the second sample
    trace = lh.hutchinson_trace(lambda u: u, torch.zeros(7, dtype=torch.float64))
    assert trace.samples == [7.0, 7.0] and trace.converged and trace.estimate == 7.0 and trace.stderr == 0.0


# --------------------------------------------------------------------------- directions

def conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 4))


def test_sphere_direction_is_a_unit_vector_over_all_weights_by_name():
    net = conv_net()
    d = directions.sphere_direction(net, seed=5)
    assert list(d) == [n for n, _ in net.named_parameters()]  # no running statistics
    assert "1.running_mean" not in d
    assert directions.norm(d) == pytest.approx(1.0, rel=1e-6)
    for name, p in net.named_parameters():
        assert d[name].shape == p.shape
    again = directions.sphere_direction(net, seed=5)
    assert all(torch.equal(d[k], again[k]) for k in d)
    other = directions.sphere_direction(net, seed=6)
    assert not torch.equal(d["0.weight"], other["0.weight"])


def test_sphere_direction_is_isotropic():
    """Over seeds: mean 0 and second moment I / P, the moments of the uniform distribution on the sphere."""
    net = tiny_net()
    draws = torch.stack([torch.cat([t.reshape(-1) for t in directions.sphere_direction(net, seed=s).values()])
                         for s in range(2000)]).double()  # (2000, 53)
    p = draws.shape[1]
    assert draws.mean(0).abs().max() < 5 * math.sqrt(1 / p / 2000)
    second = draws.T @ draws / len(draws)
    assert torch.diagonal(second).mean() == pytest.approx(1 / p, rel=1e-6)  # unit vectors: exactly
    assert torch.diagonal(second).sub(1 / p).abs().max() < 0.3 / p
    off = second - torch.diag(torch.diagonal(second))
    assert off.abs().max() < 0.3 / p


def net_plotter_filter_rule(direction: dict, model: nn.Module, ignore: str) -> dict:
    """loss-landscape's normalize_directions_for_weights(direction, weights, 'filter', ignore),
    written out as its loops over the parameters and their filters."""
    out = {}
    for name, w in model.named_parameters():
        d = direction[name].clone()
        w = w.detach()
        if d.dim() <= 1:
            if ignore == "biasbn":
                d.fill_(0)
            else:
                d.copy_(w)
        else:
            for di, wi in zip(d, w):
                di.mul_(wi.norm() / (di.norm() + 1e-10))
        out[name] = d
    return out


@pytest.mark.parametrize("rule, ignore", [("zero", "biasbn"), ("weights", "")])
def test_filter_normalized_direction_is_net_plotters(rule, ignore):
    net = conv_net()
    d = directions.filter_normalized_direction(net, seed=3, bias_bn=rule)
    gaussian = directions.gaussian_direction(net, seed=3)
    expected = net_plotter_filter_rule(gaussian, net, ignore)
    for name, w in net.named_parameters():
        torch.testing.assert_close(d[name], expected[name], rtol=1e-6, atol=0)
        if w.dim() > 1:  # every filter (output unit) has the norm of the model's filter
            w = w.detach()
            for i in range(w.shape[0]):
                assert float(d[name][i].norm()) == pytest.approx(float(w[i].norm()), rel=1e-5)
        elif rule == "zero":  # biases and BatchNorm's weight and bias stay where they are
            assert not d[name].any()
        else:
            assert torch.equal(d[name], w.detach())
    with pytest.raises(ValueError, match="bias_bn"):
        directions.filter_normalized_direction(net, bias_bn="biasbn")


def test_points_along_directions_by_name():
    net = conv_net()
    w = directions.weights(net)
    d, e = directions.sphere_direction(net, 1), directions.sphere_direction(net, 2)
    point = directions.combine(w, (0.5, d), (-2.0, e))
    for k in w:
        torch.testing.assert_close(point[k], w[k] + 0.5 * d[k] - 2.0 * e[k])
    other = conv_net()
    directions.load_weights(other, dict(reversed(list(point.items()))))  # by name, whatever the order
    for k, p in other.named_parameters():
        assert torch.equal(p.detach(), point[k])
    assert torch.equal(other[1].running_mean, net[1].running_mean)  # buffers untouched
    with pytest.raises(ValueError, match="missing"):
        directions.load_weights(other, {k: v for k, v in point.items() if k != "4.bias"})
    with pytest.raises(ValueError, match="names"):
        directions.combine(w, (1.0, {"x": torch.zeros(1)}))


def test_measure_ray_and_plane_call_the_evaluation_at_the_points():
    net = conv_net()
    w = directions.weights(net)
    d, e = directions.sphere_direction(net, 1), directions.sphere_direction(net, 2)

    def evaluate(state):  # distance from w, and the coordinate along e
        delta = {k: state[k] - w[k] for k in w}
        return {"moved": directions.norm(delta), "along_e": sum(float((delta[k] * e[k]).sum()) for k in w)}

    rows = directions.measure_ray(evaluate, w, d, max_distance=3.0, num_points=4)
    assert [r["distance"] for r in rows] == [0.0, 1.0, 2.0, 3.0]
    assert [r["moved"] for r in rows] == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=1e-5)
    grid = directions.measure_plane(evaluate, w, d, e, [-1.0, 1.0], [0.0, 0.5, 1.0])
    assert [(r["i"], r["j"]) for r in grid] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert grid[4]["x"] == 1.0 and grid[4]["y"] == 0.5
    cos = sum(float((d[k] * e[k]).sum()) for k in w)
    assert grid[4]["moved"] == pytest.approx(math.sqrt(1.25 + cos), rel=1e-5)  # || d + 0.5 e ||
    with pytest.raises(ValueError):
        directions.ray_distances(3.0, 1)


def test_width_rule_on_a_made_up_curve():
    r = [0.0, 1.0, 2.0, 3.0, 4.0]
    # the loss first reaches 1.0 + 0.1 between distances 1 (1.05) and 2 (1.30): 1 + 0.05 / 0.25
    assert landscape.width(r, [1.0, 1.05, 1.30, 2.0, 5.0], rise=0.1) == pytest.approx(1.2)
    # a dip below the start does not count; the rise is from the value at distance 0
    assert landscape.width(r, [1.0, 0.8, 1.0, 1.2, 1.6], rise=0.1) == pytest.approx(2.5)
    assert landscape.width(r, [1.0, 1.1, 1.2, 1.3, 1.4], rise=0.1) == pytest.approx(1.0)  # reached exactly
    assert landscape.width(r, [1.0, 1.01, 1.02, 1.03, 1.04], rise=0.1) == math.inf  # never within 4
    with pytest.raises(ValueError):
        landscape.width(r, [1.0] * 5, rise=0.0)
    with pytest.raises(ValueError):
        landscape.width([0.0, 2.0, 1.0], [1.0, 2.0, 3.0], rise=0.1)


# --------------------------------------------------------------------------- hessian.py

def pyhessian_top_eigenvalue(model, x, y, iterations: int) -> float:
    """PyHessian's single-batch power iteration, with torch.autograd's double backward (not torch.func)."""
    model.eval()
    params = list(model.parameters())
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), params, create_graph=True)
    g = torch.Generator().manual_seed(0)
    v = [torch.randn(p.shape, generator=g) for p in params]
    value = 0.0
    for _ in range(iterations):
        length = math.sqrt(sum(float((t * t).sum()) for t in v))
        v = [t / length for t in v]
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        value = sum(float((a * b).sum()) for a, b in zip(hv, v))
        v = [t.detach() for t in hv]
    return value


def test_hessian_script_end_to_end(tmp_path, capsys):
    import importlib

    import cli
    import data
    import models
    import runtime
    from conftest import random_checkpoint

    ckpt = random_checkpoint(tmp_path / "mlp.pt", "MLP", 0)
    out = tmp_path / "run"
    args = [f"--dir={out}", f"--ckpt={ckpt}", "--top_k=2", "--trace", "--num_images=40", "--batch_size=16",
            "--max_iter=300", "--tol=1e-7", "--trace_max_iter=5", "--trace_tol=0", "--device=cpu"]
    script = importlib.import_module("hessian")
    cli.run(script.main, args)
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    values = summary["eigenvalues"]
    assert len(values) == 2 and values[0] >= values[1] > 0 and summary["eigenvalues_converged"]
    assert summary["num_images"] == 40 and summary["num_parameters"] == 85002
    assert summary["trace_samples"] == 5 and summary["trace_stderr"] > 0 and summary["trace"] > values[0]
    assert {"command.sh", "args.json", "metrics.csv", "summary.json"} <= set(os.listdir(out))
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "k,eigenvalue,iterations,converged" and len(rows) == 3
    assert "trace" in printed and "eigenvalue" in printed
    # the first 40 training images of the checkpoint's split (DIGITS without --use_test), as they are
    dataset = data.load_dataset("DIGITS", use_test=False)
    (mean,), (std,) = data.normalisation("VGG", 1)
    x = (dataset.train.images[:40].float() / 255 - mean) / std
    model = models.model_from_checkpoint(runtime.load_checkpoint(ckpt))
    assert values[0] == pytest.approx(pyhessian_top_eigenvalue(model, x, dataset.train.labels[:40], 300), rel=1e-4)
    cli.run(script.main, args)  # a finished run is left as it is
    assert "nothing to do" in capsys.readouterr().out and json.loads((out / "summary.json").read_text()) == summary


def test_hessian_script_bad_inputs(tmp_path, capsys):
    import importlib

    import runtime
    from conftest import random_checkpoint, user_error

    script = importlib.import_module("hessian")
    ckpt = random_checkpoint(tmp_path / "mlp.pt", "MLP", 0)
    curve = tmp_path / "curve.pt"
    runtime.save_checkpoint(str(curve), {"kind": "curve", "model": "MLP", "model_state": {}})
    out = tmp_path / "run"
    cases = {
        "does not exist": [f"--ckpt={tmp_path / 'missing.pt'}"],
        "'curve' checkpoint": [f"--ckpt={curve}"],
        "has 1077 images": [f"--ckpt={ckpt}", "--num_images=5000"],
        "top_k": [f"--ckpt={ckpt}", "--top_k=0"],
        "float32": [f"--ckpt={ckpt}", "--amp"],
        "trace_max_iter": [f"--ckpt={ckpt}", "--trace", "--trace_max_iter=1"],
    }
    for expected, argv in cases.items():
        assert expected in user_error(capsys, script.main, f"--dir={out}", "--device=cpu", *argv)
        assert not out.exists()  # nothing written


# --------------------------------------------------------------------------- surface.py

def test_surface_script_1d_and_2d(tmp_path, capsys):
    import csv
    import importlib

    import cli
    import data
    import models
    import runtime
    from conftest import random_checkpoint, user_error

    script = importlib.import_module("surface")
    ckpt = random_checkpoint(tmp_path / "mlp.pt", "MLP", 0)
    one = tmp_path / "1d"
    cli.run(script.main, [f"--dir={one}", f"--ckpt={ckpt}", "--x=-1:1:3", "--device=cpu", "--seed=4"])
    with open(one / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["x"]) for r in rows] == [-1.0, 0.0, 1.0]
    summary = json.loads((one / "summary.json").read_text())
    assert summary["dimensions"] == 1 and summary["points"] == 3
    assert float(rows[1]["tr_loss"]) == pytest.approx(summary["checkpoint"]["train_loss"])
    assert {"surface.npz", "surface.png", "command.sh", "args.json"} <= set(os.listdir(one))
    # x = 1 is w + d, d net_plotter's filter rule (--xignore biasbn) on Gaussian draws from the seed,
    # evaluated on DIGITS' training images without --use_test, as they are
    model = models.model_from_checkpoint(runtime.load_checkpoint(ckpt))
    g = torch.Generator().manual_seed(4)
    gaussian = {name: torch.randn(p.shape, generator=g) for name, p in model.named_parameters()}
    d = net_plotter_filter_rule(gaussian, model, "biasbn")
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(d[name])
    dataset = data.load_dataset("DIGITS", use_test=False)
    (mean,), (std,) = data.normalisation("VGG", 1)
    with torch.no_grad():
        logits = model.eval()((dataset.train.images.float() / 255 - mean) / std)
    assert float(rows[2]["tr_nll"]) == pytest.approx(float(F.cross_entropy(logits, dataset.train.labels)), rel=1e-5)

    two = tmp_path / "2d"
    cli.run(script.main, [f"--dir={two}", f"--ckpt={ckpt}", "--x=-1:1:2", "--y=0:0.5:3", "--xignore=",
                          "--device=cpu"])
    arrays = np.load(two / "surface.npz")
    assert arrays["tr_loss"].shape == (2, 3) and list(arrays["ycoordinates"]) == [0.0, 0.25, 0.5]
    assert json.loads((two / "summary.json").read_text())["dimensions"] == 2
    capsys.readouterr()
    for bad in (["--x=1:-1:5"], ["--x=0:1"], ["--xignore=all"]):
        assert "error:" in user_error(capsys, script.main, f"--dir={tmp_path / 'bad'}", f"--ckpt={ckpt}", *bad)
    assert not (tmp_path / "bad").exists()
