"""curves/ as subspaces: learned lines and simplexes (learning-subspaces) and SPRO's grown simplex.

Each check is against an independent computation: the Dirichlet's known marginals,
volumes of simplices known in closed form, torch.autograd and finite differences
for the hand-written gradients, the existing 2-bend chain for the line, plain
per-layer interpolation for layerwise points.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

import curves
import runtime
import utils
from curves import CurveModel, SubspaceModel
from models import build_model


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("MLP", 10, in_channels=1, image_size=8)


def small_resnet(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("ResNet20", 10, in_channels=1, image_size=8)


def simplex(num_vertices=3, layerwise=False, dtype=torch.float32, seed=0, make=mlp) -> SubspaceModel:
    model = SubspaceModel(make(0), "simplex", num_vertices, layerwise=layerwise, seed=seed)
    for k in range(1, num_vertices):
        model.load_vertex(k, make(k).state_dict())
    return model.to(dtype)


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


# --------------------------------------------------------------------------- sampling

@pytest.mark.parametrize("n", [2, 3, 5])
def test_dirichlet_draws_are_uniform_on_the_simplex(n):
    g = torch.Generator().manual_seed(n)
    c = curves.dirichlet(40000, n, g)
    assert c.shape == (40000, n) and (c >= 0).all()
    assert torch.allclose(c.sum(1), torch.ones(40000, dtype=torch.float64), atol=1e-12)
    # Dirichlet(1, ..., 1): each coordinate is Beta(1, n - 1), mean 1/n, P(c_k > x) = (1 - x)^(n - 1)
    std = math.sqrt((n - 1) / (n * n * (n + 1)) / 40000)
    assert torch.allclose(c.mean(0), torch.full((n,), 1 / n, dtype=torch.float64), atol=5 * std)
    for x in (0.1, 0.3, 0.6):
        tail = (c[:, 0] > x).double().mean().item()
        assert abs(tail - (1 - x) ** (n - 1)) < 0.01


def test_model_draws_are_points_of_its_shape():
    model = simplex(4)
    draws = torch.stack([model.sample() for _ in range(2000)])
    assert draws.shape == (2000, 4) and (draws >= 0).all()
    assert torch.allclose(draws.sum(1), torch.ones(2000, dtype=torch.float64))
    assert torch.allclose(draws.mean(0), torch.full((4,), 0.25, dtype=torch.float64), atol=0.02)
    line = SubspaceModel(mlp(0), "PolyChain", 2, seed=0)
    alphas = torch.stack([line.sample() for _ in range(2000)])[:, 1]  # c = (1 - alpha, alpha)
    assert 0 <= alphas.min() and alphas.max() <= 1 and abs(alphas.mean().item() - 0.5) < 0.02
    assert abs((alphas < 0.25).double().mean().item() - 0.25) < 0.03  # uniform


def test_same_seed_same_draws_and_a_restored_sampler_continues():
    a, b = SubspaceModel(mlp(0), "simplex", 3, seed=11), SubspaceModel(mlp(0), "simplex", 3, seed=11)
    first = [a.sample() for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(first, [b.sample() for _ in range(3)]))
    assert not torch.equal(first[0], first[1])
    state = a.sampler_state()
    a_next = [a.sample() for _ in range(3)] + [a.sample_pair()]
    c = SubspaceModel(mlp(0), "simplex", 3, seed=99)
    c.load_sampler_state(state)
    assert all(torch.equal(x, y) for x, y in zip(a_next[:3], [c.sample() for _ in range(3)]))
    assert c.sample_pair() == a_next[3]
    # the state dict carries the sampler: a resumed model draws what the original draws next
    d = SubspaceModel(mlp(0), "simplex", 3, seed=5)
    d.load_state_dict(a.state_dict())
    assert torch.equal(d.sample(), a.sample())
    # no seed: drawn from the global RNG, so torch.manual_seed fixes it
    torch.manual_seed(3)
    e = SubspaceModel(mlp(0), "simplex", 3)
    torch.manual_seed(3)
    f = SubspaceModel(mlp(0), "simplex", 3)
    assert torch.equal(e.sample(), f.sample())


def test_draws_leave_the_global_rng_alone():
    model = simplex(3).train()
    x = torch.randn(2, 1, 8, 8)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    model(x), model.cosine()
    assert torch.equal(torch.rand(3), expected)


def test_layerwise_draws_differ_between_layers_and_shared_draws_do_not():
    layerwise, shared = simplex(3, layerwise=True), simplex(3)
    x = torch.randn(2, 1, 8, 8)
    layerwise.train()(x)
    c = layerwise.last_coefficients
    assert c.shape == (len(layerwise.layers), 3) == (3, 3)  # MLP: three Linear layers
    assert not torch.allclose(c[0], c[1]) and not torch.allclose(c[1], c[2])
    assert torch.allclose(c.sum(1), torch.ones(3, dtype=torch.float64))
    shared.train()(x)
    assert shared.last_coefficients.shape == (3,)
    # weights of a layerwise point: each layer interpolated with its own row, weight and bias alike
    w = layerwise.weights(c).detach()
    vertices = [layerwise.vertices[k].tensors() for k in range(3)]
    expected = []
    for i, name in enumerate(layerwise.names):
        row = {"net.1": 0, "net.3": 1, "net.5": 2}[name.rpartition(".")[0]]
        expected.append(sum(c[row, k].item() * vertices[k][i] for k in range(3)))
    assert torch.allclose(w, flat(expected), atol=1e-6)
    # BatchNorm layers are layers too (learning-subspaces draws per Conv2d and per BatchNorm2d)
    resnet = SubspaceModel(small_resnet(0), "PolyChain", 2, layerwise=True, seed=0)
    assert "layer1.0.bn1" in resnet.layers and "layer1.0.conv1" in resnet.layers
    assert resnet.sample().shape == (len(resnet.layers), 2)


def test_independent_initialisations_are_reproducible_from_the_seed():
    def make():
        return build_model("MLP", 10, in_channels=1, image_size=8)

    def build():
        torch.manual_seed(4)
        model = SubspaceModel(make(), "simplex", 3, seed=0)
        model.init_random(make)
        return model

    a, b = build(), build()
    assert torch.equal(a.vertices_matrix(), b.vertices_matrix())
    assert not torch.allclose(a.vertex(0), a.vertex(1)) and not torch.allclose(a.vertex(1), a.vertex(2))
    torch.manual_seed(4)
    fresh = [make() for _ in range(3)]  # vertex 0 is the module's own initialisation, then one each
    for k in range(3):
        assert torch.equal(a.vertex(k), flat(fresh[k].parameters()))


# --------------------------------------------------------------------------- points

def test_a_two_vertex_line_is_the_two_bend_chain():
    chain = CurveModel(mlp(0), "PolyChain", 2, fix_start=False, fix_end=False)
    chain.load_bend(1, mlp(1).state_dict())
    line = SubspaceModel(mlp(0), "PolyChain", 2, seed=0)
    line.load_vertex(1, mlp(1).state_dict())
    two = SubspaceModel(mlp(0), "simplex", 2, seed=0)
    two.load_vertex(1, mlp(1).state_dict())
    x = torch.randn(4, 1, 8, 8)
    for alpha in (0.0, 0.3, 0.75, 1.0):
        c = [1 - alpha, alpha]
        assert torch.equal(line.weights(alpha), chain.weights(alpha))
        assert torch.allclose(two.weights(c), chain.weights(alpha), atol=1e-6)
        assert torch.allclose(line.eval()(x, coefficients=c), chain.eval()(x, alpha), atol=1e-6)
        assert torch.allclose(line.at(alpha)(x), chain(x, alpha))


def test_points_as_coefficients_centroid_and_vertices():
    model = simplex(3)
    V = model.vertices_matrix().double()
    c = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    assert torch.allclose(model.weights(c).double(), c @ V, atol=1e-6)
    assert torch.allclose(model.weights(curves.centroid(3)).double(), V.mean(0), atol=1e-6)
    assert torch.equal(model.weights([0.0, 1.0, 0.0]), model.vertex(1))
    with pytest.raises(ValueError, match="not a t"):
        model.weights(0.5)
    with pytest.raises(ValueError, match="coefficients of shape"):
        model.weights([0.5, 0.5])
    with pytest.raises(ValueError, match="eval mode"):
        model.eval()(torch.randn(1, 1, 8, 8))


def test_batchnorm_statistics_are_recomputed_at_each_point():
    model = SubspaceModel(small_resnet(0), "simplex", 3, seed=0)
    model.init_random(lambda: build_model("ResNet20", 10, in_channels=1, image_size=8))
    batches = [(torch.randn(16, 1, 8, 8), torch.zeros(16, dtype=torch.long)) for _ in range(2)]
    x = torch.randn(4, 1, 8, 8)
    for c in ([1.0, 0.0, 0.0], curves.centroid(3)):
        net = small_resnet(0)
        net.load_state_dict(model.module_state(c))
        utils.update_bn(net, batches)
        utils.update_bn(model, batches, forward=model.at(c))
        assert torch.allclose(model.eval()(x, coefficients=c), net.eval()(x), atol=1e-5)


@pytest.mark.parametrize("layerwise", [False, True])
def test_fused_gradients_match_autograd_with_frozen_vertices(layerwise):
    model = SubspaceModel(mlp(0), "simplex", 3, fixed=[1], layerwise=layerwise, seed=2).double()
    for k in range(3):
        model.load_vertex(k, mlp(k).double().state_dict())
    assert list(model.parameters()) == model.vertices[0].tensors() + model.vertices[2].tensors()
    x, wd = torch.randn(5, 1, 8, 8, dtype=torch.float64), 0.1
    out = model.train()(x)
    c = model.last_coefficients
    grads = torch.autograd.grad(out.sin().sum() + model.l2(wd), list(model.parameters()))
    rows = c[model._slot_layer] if layerwise else c.expand(len(model.names), 3)
    phi = [sum(rows[i, k] * model.vertices[k].tensors()[i] for k in range(3)) for i in range(len(model.names))]
    ref = functional_call(model.module, dict(zip(model.names, phi)), (x,)).sin().sum() \
        + 0.5 * wd * sum((p * p).sum() for p in phi)
    for g, r in zip(grads, torch.autograd.grad(ref, list(model.parameters()))):
        assert torch.allclose(g, r, atol=1e-10)


# --------------------------------------------------------------------------- regularisers

def simplex_volume_closed_form():
    """Vertices (as rows) of simplices with known volumes."""
    s = 1 / (2 * math.sqrt(2))  # the tetrahedron (1,1,1), (1,-1,-1), ... has edge 2 sqrt 2
    rows = [
        ([[0, 0], [3, 4]], 5.0),  # a segment: its length
        ([[0, 0], [1, 0], [0, 1]], 0.5),  # unit right triangle
        ([[s, s, s], [s, -s, -s], [-s, s, -s], [-s, -s, s]], 1 / (6 * math.sqrt(2))),  # regular, edge 1
        ([[0, 0, 0], [2, 0, 0], [0, 3, 0], [0, 0, 4]], 2 * 3 * 4 / 6),  # corner of a box
    ]
    return [(torch.tensor(points, dtype=torch.float64), volume) for points, volume in rows]


@pytest.mark.parametrize("index", range(4))
def test_cayley_menger_volume_of_known_simplices(index):
    points, volume = simplex_volume_closed_form()[index]
    n, d = points.shape
    if index == 2:  # regular: all six edges 1
        assert torch.allclose(torch.pdist(points), torch.ones(6, dtype=torch.float64))
    # placed in R^9 by a random rotation and shift, and split into two "parameters"
    q, _ = torch.linalg.qr(torch.randn(9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(index)))
    lifted = torch.cat([points.double(), torch.zeros(n, 9 - d, dtype=torch.float64)], 1) @ q.T + 3.0
    vertices = [[row[:4].reshape(2, 2), row[4:]] for row in lifted]
    assert math.isclose(curves.volume_sq(vertices).item(), volume ** 2, rel_tol=1e-9)
    sq = torch.cdist(lifted, lifted).square()
    assert math.isclose(curves.cayley_menger_volume_sq(sq).item(), volume ** 2, rel_tol=1e-9)
    assert curves.volume_sq(vertices[:1]).item() == 1.0  # one point


def test_volume_agrees_with_the_gram_determinant_and_its_gradient_with_autograd():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(4, 12, dtype=torch.float64, generator=g, requires_grad=True)
    # V^2 = det(G) / (k!)^2, G the Gram matrix of the edges from vertex 0: another route to the volume
    edges = points[1:] - points[0]
    gram_volume = torch.linalg.det(edges @ edges.T) / math.factorial(3) ** 2
    ours = curves.volume_sq([[p[:5], p[5:]] for p in points])
    assert torch.allclose(ours, gram_volume)
    assert torch.autograd.gradcheck(lambda p: torch.log(curves.volume_sq([[r] for r in p]) + 1e-4), (points,))
    assert torch.allclose(torch.autograd.grad(ours, points)[0], torch.autograd.grad(gram_volume, points)[0])


@pytest.mark.parametrize("layout", ["channels_last", "mixed"])
def test_volume_of_channels_last_weights(layout):
    """Vertices in channels-last memory (--channels_last), or in different layouts, give the volume
    and the gradients of contiguous ones."""
    g = torch.Generator().manual_seed(3)
    plain = [[torch.randn(4, 3, 2, 2, dtype=torch.float64, generator=g), torch.randn(3, dtype=torch.float64, generator=g)]
             for _ in range(3)]
    other = [[t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 and (layout == "channels_last" or k)
              else t.clone() for t in v] for k, v in enumerate(plain)]
    for v in plain + other:
        for t in v:
            t.requires_grad_(True)
    expected = curves.volume_sq(plain)
    value = curves.volume_sq(other)
    assert torch.allclose(value, expected)
    for a, b in zip(torch.autograd.grad(expected, [t for v in plain for t in v]),
                    torch.autograd.grad(value, [t for v in other for t in v])):
        assert torch.allclose(a, b)


def test_cosine_squared_value_and_gradients():
    g = torch.Generator().manual_seed(1)
    a = [torch.randn(3, 4, dtype=torch.float64, generator=g, requires_grad=True) for _ in range(2)]
    b = [torch.randn(3, 4, dtype=torch.float64, generator=g, requires_grad=True) for _ in range(2)]
    expected = F.cosine_similarity(flat(a), flat(b), dim=0).square()
    assert torch.allclose(curves.cosine_squared(a, b), expected)
    assert torch.autograd.gradcheck(lambda *t: curves.cosine_squared(list(t[:2]), list(t[2:])), (*a, *b))
    # a frozen vertex: no gradient for it, the right one for the other
    frozen = [t.detach() for t in b]
    grads = torch.autograd.grad(curves.cosine_squared(a, frozen), a)
    ref = torch.autograd.grad(F.cosine_similarity(flat(a), flat(frozen), dim=0).square(), a)
    assert all(torch.allclose(x, y) for x, y in zip(grads, ref))


def test_cosine_of_channels_last_weights():
    """Convolution weights in channels-last memory (--channels_last) pair the same elements."""
    g = torch.Generator().manual_seed(2)
    a = [torch.randn(8, 3, 3, 3, generator=g), torch.randn(5, generator=g)]
    b = [torch.randn(8, 3, 3, 3, generator=g), torch.randn(5, generator=g)]
    expected = curves.cosine_squared(a, b)
    last = [t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in a]
    assert torch.allclose(curves.cosine_squared(last, [t.contiguous(memory_format=torch.channels_last)
                                                       if t.dim() == 4 else t for t in b]), expected)
    assert torch.allclose(curves.cosine_squared(last, b), expected)  # mixed layouts


def test_the_cosine_acts_on_convolution_and_linear_weights_of_a_random_pair():
    model = SubspaceModel(small_resnet(0), "simplex", 3, seed=0).double()
    model.init_random(lambda: build_model("ResNet20", 10, in_channels=1, image_size=8))
    chosen = [model.names[i] for i in model.cosine_slots]
    assert "conv1.weight" in chosen and "fc.weight" in chosen and "layer3.2.conv2.weight" in chosen
    assert not any("bn" in name or name.endswith("bias") for name in chosen)
    pairs = {tuple(sorted(model.sample_pair())) for _ in range(100)}
    assert pairs == {(0, 1), (0, 2), (1, 2)}
    for i, j in pairs:
        vi = flat(model.vertices[i].tensors()[s] for s in model.cosine_slots)
        vj = flat(model.vertices[j].tensors()[s] for s in model.cosine_slots)
        assert torch.allclose(model.cosine((i, j)), F.cosine_similarity(vi, vj, dim=0).square())


@pytest.mark.parametrize("layerwise,fixed", [(False, ()), (True, (1,)), (False, (0, 2))])
def test_fused_cosine_matches_autograd(layerwise, fixed):
    """regularizer(beta=...) computes the cosine with the combination and adds its gradient in place;
    the reference is plain autograd through an explicit combination and F.cosine_similarity."""
    model = SubspaceModel(small_resnet(0), "simplex", 3, fixed=fixed, layerwise=layerwise, seed=4).double()
    for k in range(1, 3):
        model.load_vertex(k, small_resnet(k).double().state_dict())
    params = list(model.parameters())
    reg = model.regularizer(wd=0.1, beta=2.0)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    seen = set()
    for _ in range(6):
        out = model.train()(x)
        value = reg()
        grads = torch.autograd.grad(out.sin().sum() + value, params)
        c, (i, j) = model.last_coefficients, model.last_pair
        seen.add((min(i, j), max(i, j)))
        rows = c[model._slot_layer] if layerwise else c.expand(len(model.names), 3)
        phi = [sum(rows[s, k] * model.vertices[k].tensors()[s] for k in range(3)) for s in range(len(model.names))]
        vi, vj = (flat(model.vertices[k].tensors()[s] for s in model.cosine_slots) for k in (i, j))
        cos2 = F.cosine_similarity(vi, vj, dim=0).square()
        ref = functional_call(model.module, dict(zip(model.names, phi)), (x,)).sin().sum() \
            + 0.5 * 0.1 * sum((p * p).sum() for p in phi) + 2.0 * cos2
        assert torch.allclose(value, 0.5 * 0.1 * sum((p * p).sum() for p in phi) + 2.0 * cos2)
        for g, r in zip(grads, torch.autograd.grad(ref, params)):
            assert torch.allclose(g, r, atol=1e-10)
    assert len(seen) > 1


def test_regularizer_sums_the_terms():
    model = simplex(3, dtype=torch.float64)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    state = model.sampler_state()
    model.train()(x)
    pair = model.sample_pair()
    model.load_sampler_state(state)
    model(x)
    value = model.regularizer(wd=0.01, beta=2.0, lam=0.5)()
    phi = model.weights(model.last_coefficients)
    V = model.vertices_matrix()
    edges = V[1:] - V[0]
    vol = torch.linalg.det(edges @ edges.T) / 4
    i, j = pair
    cos2 = F.cosine_similarity(flat(model.vertices[i].tensors()[s] for s in model.cosine_slots),
                               flat(model.vertices[j].tensors()[s] for s in model.cosine_slots), dim=0).square()
    expected = 0.5 * 0.01 * phi.square().sum() + 2.0 * cos2 - 0.5 * torch.log(vol + 1e-4)
    assert torch.allclose(value, expected)
    assert math.isclose(curves.spro_lambda(1e-6, math.e ** 2 - 1e-4), 5e-7)


# --------------------------------------------------------------------------- SPRO growth

def test_add_vertex_starts_at_the_centroid_and_freezes_the_others():
    model = SubspaceModel(mlp(0), "simplex", 1, fixed=[0], seed=0)
    assert list(model.parameters()) == []
    assert model.add_vertex() == 1
    assert torch.equal(model.vertex(1), model.vertex(0))  # the centroid of one network is itself
    with torch.no_grad():
        for p in model.vertices[1].tensors():
            p.add_(torch.randn_like(p))
    model.add_vertex()
    assert torch.allclose(model.vertex(2), (model.vertex(0) + model.vertex(1)) / 2, atol=1e-6)
    assert model.fixed_vertices == [0, 1] and model.free_vertices == [2]
    assert list(model.parameters()) == model.vertices[2].tensors()
    assert all(not t.requires_grad for k in (0, 1) for t in model.vertices[k].tensors())
    # training moves only the newest vertex
    before = model.vertices_matrix()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model.train()(torch.randn(4, 1, 8, 8)).square().mean() + model.regularizer(lam=1.0)()
    loss.backward()
    optimizer.step()
    after = model.vertices_matrix()
    assert torch.equal(after[:2], before[:2]) and not torch.equal(after[2], before[2])
    with pytest.raises(ValueError):
        SubspaceModel(mlp(0), "Bezier", 3, seed=0).add_vertex()


def test_subspace_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = SubspaceModel(small_resnet(0), "simplex", 1, fixed=[0], seed=3)
    model.add_vertex()
    model.add_vertex()
    model.sample()
    path = tmp_path / "checkpoint-1.pt"
    runtime.save_checkpoint(str(path), curves.subspace_checkpoint(
        model, "ResNet20", num_classes=10, model_kwargs={"in_channels": 1, "image_size": 8},
        dataset="DIGITS", transform="VGG", epoch=1, args={}))
    ckpt = runtime.load_checkpoint(str(path), kind="subspace")
    assert (ckpt["shape"], ckpt["num_vertices"], ckpt["fixed"], ckpt["layerwise"]) == ("simplex", 3, [0, 1], False)
    again = curves.subspace_from_checkpoint(ckpt)
    assert torch.equal(again.vertices_matrix(), model.vertices_matrix())
    assert again.free_vertices == [2]
    assert torch.equal(again.sample(), model.sample())


def test_a_state_without_the_sampler_still_loads():
    """Curve checkpoints written before the sampler existed have no sampler._extra_state."""
    curve = CurveModel(mlp(0), "Bezier", 3, seed=1)
    old = {k: v for k, v in curve.state_dict().items() if not k.startswith("sampler")}
    again = CurveModel(mlp(1), "Bezier", 3, seed=2)
    again.load_state_dict(old)
    assert torch.equal(again.bends_matrix(), curve.bends_matrix())


def test_volume_reuses_the_frozen_vertices_edges_until_they_change():
    """SPRO's volume: the frozen vertices' edges are kept between steps (model._volume_cache); the
    value and the newest vertex's gradient are those of a fresh computation, also after a change."""
    model = SubspaceModel(mlp(0), "simplex", 3, fixed=[0, 1, 2], seed=0).double()
    for k in range(1, 3):
        model.load_vertex(k, mlp(k).double().state_dict())
    model.add_vertex()
    with torch.no_grad():
        for p in model.vertices[3].tensors():
            p.add_(0.1 * torch.randn_like(p))

    def fresh():
        vertices = [[t.detach().clone().requires_grad_(k == 3) for t in v.tensors()] for k, v in enumerate(model.vertices)]
        value = torch.log(curves.volume_sq(vertices))
        return value, torch.autograd.grad(value, vertices[3])

    for step in range(3):
        value = model.log_volume(eps=0.0)
        grads = torch.autograd.grad(value, model.vertices[3].tensors())
        expected, expected_grads = fresh()
        assert torch.allclose(value, expected, rtol=1e-10)
        assert all(torch.allclose(g, e, rtol=1e-8, atol=1e-12) for g, e in zip(grads, expected_grads))
        edges = model._volume_cache["edges"]  # one (kept vertices, size) matrix per parameter
        assert len(edges) == len(model.names) and all(e.shape[0] == 2 for e in edges)  # vertices 1, 2
        with torch.no_grad():
            if step == 0:  # the newest vertex moves: the cache stays
                kept = model._volume_cache["edges"]
                model.vertices[3].tensors()[0].add_(1.0)
            else:  # a frozen one changes in place: the cache is rebuilt
                model.vertices[1].tensors()[0].mul_(1.5)
        if step == 0:
            model.log_volume()
            assert model._volume_cache["edges"] is kept
