"""curves/: coefficients, the generic curve model, its L2 term, length statistics, checkpoints.

Each subtle piece is checked against an independent computation: de Casteljau's
algorithm for Bezier, numpy's interp for the chain, plain autograd for the fused
gradient, an explicit sum for the L2 term.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.func import functional_call

import curves
import runtime
import utils
from curves import CurveModel, bezier, polychain
from models import build_model


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("MLP", 10, in_channels=1, image_size=8)


def de_casteljau(points: np.ndarray, t: float) -> np.ndarray:
    """The Bezier point by repeated linear interpolation, without Bernstein polynomials."""
    points = points.copy()
    while len(points) > 1:
        points = (1 - t) * points[:-1] + t * points[1:]
    return points[0]


def random_curve(kind="Bezier", num_bends=3, fix_start=True, fix_end=True, dtype=torch.float32):
    curve = CurveModel(mlp(0), kind, num_bends, fix_start, fix_end).to(dtype)
    for k in range(num_bends):
        curve.load_bend(k, mlp(k).state_dict())
    return curve


# --------------------------------------------------------------------------- coefficients

def test_coefficients_hand_values():
    assert torch.allclose(bezier(0.5, 3), torch.tensor([0.25, 0.5, 0.25]))
    assert torch.allclose(bezier(0.2, 2), torch.tensor([0.8, 0.2]))
    assert torch.allclose(polychain(0.25, 3), torch.tensor([0.5, 0.5, 0.0]))
    assert torch.allclose(polychain(0.75, 3), torch.tensor([0.0, 0.5, 0.5]))
    assert torch.equal(polychain(0.5, 3), torch.tensor([0.0, 1.0, 0.0]))


@pytest.mark.parametrize("fn", [bezier, polychain])
@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_coefficients_sum_to_one_and_hit_the_ends(fn, n):
    for t in np.linspace(0, 1, 13):
        c = fn(float(t), n)
        assert c.shape == (n,) and (c >= 0).all()
        assert math.isclose(c.sum().item(), 1.0, abs_tol=1e-6)
    assert torch.equal(fn(0.0, n), torch.eye(n)[0]) and torch.equal(fn(1.0, n), torch.eye(n)[-1])


@pytest.mark.parametrize("n", [2, 3, 5])
def test_coefficients_against_independent_computations(n):
    points = np.random.RandomState(n).randn(n, 4)
    for t in (0.1, 0.37, 0.5, 0.9):
        assert np.allclose(bezier(t, n).double().numpy() @ points, de_casteljau(points, t), atol=1e-6)
        knots = np.linspace(0, 1, n)  # the chain: bend k at t = k / (n - 1), linear in between
        chain = [np.interp(t, knots, points[:, j]) for j in range(points.shape[1])]
        assert np.allclose(polychain(t, n).double().numpy() @ points, chain, atol=1e-6)
    assert torch.allclose(polychain(0.3, 2), torch.tensor([0.7, 0.3]))  # the straight segment


def test_fewer_than_two_bends_is_refused():
    with pytest.raises(ValueError):
        bezier(0.5, 1)
    with pytest.raises(ValueError):
        CurveModel(mlp(0), "Bezier", 1)


# --------------------------------------------------------------------------- the curve model

def test_endpoints_reproduce_the_networks_exactly():
    curve = random_curve("Bezier", 4).eval()
    x = torch.randn(5, 1, 8, 8)
    for t, seed in ((0.0, 0), (1.0, 3)):
        net = mlp(seed).eval()
        assert torch.equal(curve(x, t), net(x))
        assert torch.equal(curve.weights(t), torch.cat([p.reshape(-1) for p in net.parameters()]))


def test_batchnorm_model_endpoints_after_the_buffers_are_set():
    torch.manual_seed(0)
    nets = [build_model("PreResNet20", 10, in_channels=1, image_size=8) for _ in range(2)]
    curve = CurveModel(build_model("PreResNet20", 10, in_channels=1, image_size=8), "Bezier", 3)
    curve.load_bend(0, nets[0].state_dict())
    curve.load_bend(2, nets[1].state_dict())
    curve.init_linear()
    batches = [(torch.randn(16, 1, 8, 8), torch.zeros(16, dtype=torch.long)) for _ in range(3)]
    x = torch.randn(4, 1, 8, 8)
    for t, net in ((0.0, nets[0]), (1.0, nets[1])):
        utils.update_bn(net, batches)
        utils.update_bn(curve, batches, forward=curve.at(t))
        assert torch.allclose(curve.eval()(x, t), net.eval()(x), atol=1e-5)
        assert torch.allclose(curve.module_state(t)["layer1.0.bn1.running_var"],
                              net.state_dict()["layer1.0.bn1.running_var"])


def test_two_bend_chain_is_linear_interpolation():
    curve = CurveModel(mlp(0), "PolyChain", 2)
    curve.load_bend(1, mlp(1).state_dict())
    a, b = curve.bend(0), curve.bend(1)
    x = torch.randn(3, 1, 8, 8)
    for t in (0.0, 0.3, 0.5, 1.0):
        assert torch.allclose(curve.weights(t), (1 - t) * a + t * b, atol=1e-6)
        net = mlp(0)
        net.load_state_dict(curve.module_state(t))
        assert torch.allclose(curve.eval()(x, t), net.eval()(x), atol=1e-6)


def test_linear_initialisation_puts_the_middle_bends_on_the_segment():
    curve = random_curve("PolyChain", 4)
    curve.init_linear()
    a, b = curve.bend(0), curve.bend(3)
    assert torch.allclose(curve.bend(1), a + (b - a) / 3, atol=1e-6)
    assert torch.allclose(curve.bend(2), a + 2 * (b - a) / 3, atol=1e-6)
    assert torch.allclose(curve.weights(0.5), (a + b) / 2, atol=1e-6)


@pytest.mark.parametrize("fix_start,fix_end", [(True, True), (True, False), (False, False)])
def test_gradients_reach_only_the_free_bends_and_match_autograd(fix_start, fix_end):
    curve = random_curve("Bezier", 4, fix_start, fix_end, dtype=torch.float64)
    free = [k for k in range(4) if not ((k == 0 and fix_start) or (k == 3 and fix_end))]
    params = list(curve.parameters())
    assert params == [p for k in free for p in curve.bends[k].tensors()]
    for k in set(range(4)) - set(free):
        assert all(not p.requires_grad for p in curve.bends[k].tensors())

    x, t, wd = torch.randn(6, 1, 8, 8, dtype=torch.float64), 0.37, 0.3
    loss = curve(x, t).sin().sum() + curve.l2(wd)
    grads = torch.autograd.grad(loss, params)
    # the same loss with an explicit combination and plain autograd (no fused backward)
    c = bezier(t, 4).double()
    phi = [sum(c[k] * curve.bends[k].tensors()[i] for k in range(4)) for i in range(len(curve.names))]
    out = functional_call(curve.module, dict(zip(curve.names, phi)), (x,))
    reference = out.sin().sum() + 0.5 * wd * sum((p * p).sum() for p in phi)
    for g, r in zip(grads, torch.autograd.grad(reference, params)):
        assert torch.allclose(g, r, atol=1e-10)
    assert all(g.abs().sum() > 0 for g in grads)


def test_l2_term():
    curve = random_curve("Bezier", 3)
    bends = curve.bends_matrix().double().numpy()
    for t in (0.0, 0.25, 0.8):
        phi = bezier(t, 3).double().numpy() @ bends
        expected = 0.5 * 5e-4 * float(phi @ phi)
        assert math.isclose(curve.l2(5e-4, t).item(), expected, rel_tol=1e-5)
        curve.train()(torch.randn(2, 1, 8, 8), t)  # the regulariser uses the last forward's t
        assert math.isclose(curve.regularizer(5e-4)().item(), expected, rel_tol=1e-5)


def test_t_is_drawn_from_the_models_generator_in_training_only():
    """t comes from the curve's own generator, not the global RNG: the same seed (every rank of a
    data-parallel run) draws the same t's whatever else consumes the global stream."""
    x = torch.randn(2, 1, 8, 8)
    curve = random_curve().train()
    state = curve.sampler_state()
    first, second = curve(x), curve(x)
    assert not torch.equal(first, second)
    curve.load_sampler_state(state)
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(curve(x), first)
    with pytest.raises(ValueError):
        curve.eval()(x)


def test_bends_are_matched_by_name_and_checked():
    curve = CurveModel(mlp(0), "Bezier", 3)
    state = mlp(1).state_dict()
    curve.load_bend(2, dict(reversed(list(state.items()))))  # another order: the same bend
    assert torch.equal(curve.bend(2), torch.cat([v.reshape(-1) for v in state.values()]))
    with pytest.raises(ValueError, match="no parameter"):
        curve.load_bend(2, {k: v for k, v in state.items() if k != "net.1.weight"})
    with pytest.raises(ValueError, match="shape"):
        curve.load_bend(2, build_model("MLP", 5, in_channels=1, image_size=8).state_dict())


def test_tied_parameters():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = self.a  # one tensor under two names

        def forward(self, x):
            return self.b(self.a(x))

    torch.manual_seed(0)
    net = Tied()
    curve = CurveModel(Tied(), "Bezier", 3)
    curve.load_bend(0, net.state_dict())
    x = torch.randn(2, 4)
    assert torch.allclose(curve.eval()(x, 0.0), net(x))


# --------------------------------------------------------------------------- length and statistics

def test_length_of_a_known_path():
    curve = random_curve("PolyChain", 3)
    a, m, b = (curve.bend(k) for k in range(3))
    expected = (torch.linalg.vector_norm(m - a) + torch.linalg.vector_norm(b - m)).item()
    dl = curves.distances([curve.weights(t).detach() for t in np.linspace(0, 1, 5)])
    assert dl[0] == 0 and math.isclose(dl.sum(), expected, rel_tol=1e-5)
    assert math.isclose(dl[1], torch.linalg.vector_norm(m - a).item() / 2, rel_tol=1e-5)


def test_summary_statistics():
    # v = t on a path whose length grows as t^2: points at t = 0, .5, 1, dl = 0, .25, .75
    stats = curves.summarise([0.0, 0.5, 1.0], [0.0, 0.25, 0.75])
    assert stats == pytest.approx({"start": 0.0, "end": 1.0, "min": 0.0, "max": 1.0, "avg": 0.5,
                                   "int": (0.25 * 0.25 + 0.75 * 0.75) / 1.0})
    assert curves.summarise([2.0, 4.0], [0.0, 0.0])["int"] == 3.0  # zero length: the plain average


# --------------------------------------------------------------------------- checkpoints

def test_curve_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    module = build_model("PreResNet20", 10, in_channels=1, image_size=8)
    curve = CurveModel(module, "PolyChain", 4, fix_start=True, fix_end=False)
    curve.load_bend(1, build_model("PreResNet20", 10, in_channels=1, image_size=8).state_dict())
    batches = [(torch.randn(8, 1, 8, 8), torch.zeros(8, dtype=torch.long))]
    utils.update_bn(curve, batches, forward=curve.at(0.4))
    optimizer = torch.optim.SGD(curve.parameters(), lr=0.1, momentum=0.9)
    path = tmp_path / "checkpoint-3.pt"
    runtime.save_checkpoint(str(path), curves.curve_checkpoint(
        curve, "PreResNet20", num_classes=10, model_kwargs={"in_channels": 1, "image_size": 8},
        dataset="DIGITS", transform="VGG", epoch=3, optimizer=optimizer, args={"wd": 1e-4}))
    ckpt = runtime.load_checkpoint(str(path), kind="curve")
    for key in ("kind", "model", "model_kwargs", "num_classes", "dataset", "transform", "epoch",
                "model_state", "optimizer_state", "args", "curve", "num_bends", "fix_start", "fix_end",
                "rng_state"):
        assert key in ckpt, key
    assert (ckpt["curve"], ckpt["num_bends"], ckpt["fix_start"], ckpt["fix_end"]) == ("PolyChain", 4, True, False)
    assert "bends.1.conv1.weight" in ckpt["model_state"]  # by name, not by position
    again = curves.curve_from_checkpoint(ckpt)
    assert torch.equal(again.bends_matrix(), curve.bends_matrix())
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(again.eval()(x, 0.4), curve.eval()(x, 0.4))
    torch.optim.SGD(again.parameters(), lr=0.1, momentum=0.9).load_state_dict(ckpt["optimizer_state"])
    with pytest.raises(Exception, match="'model' checkpoint"):
        runtime.load_checkpoint(str(path), kind="model")
