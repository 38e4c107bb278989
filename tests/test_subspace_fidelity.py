"""Numbers of the subspace and simplex scripts against the originals' rules, written out here
independently (numpy, or the originals' loops): apple/learning-subspaces and
g-benton/loss-surface-simplexes (issue 19).

- SPRO's reference simplex: SimplexNet's initialisation (simplex/models/simplex_models.py, the
  layers' reset_parameters), its V0^2 by numpy's Cayley-Menger determinant, and the original's
  log V0^2 for VGG16 (8.16 / 14.65 / 20.21 for 2 / 3 / 4 vertices).
- lambda = max(r / log(V0^2 + 1e-4), 1e-8 r / 1e-6): our mean at r = 2e-7 is the original's sum
  of 5 losses at its LMBD = 1e-6, floor included.
- ECE: learning-subspaces' binning loop (trainers/default.py, M = 20) and each script's default.
- Ensembles of logits: learning-subspaces' argmax of summed logits (trainers/ensemble.py), NLL
  and ECE of softmax(mean logits) (trainers/simplex_ensembles.py), through eval_ensemble.py.
- cResNet20: open_lth's cifar_resnet_20 counted by hand (272,464 parameters), its cos^2 tensors.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import cli
import curves
import ensembles
import eval_ensemble
import models
import runtime
import utils
from conftest import random_checkpoint
from models.init import simplex_net_init_


# --------------------------------------------------------------------------- SPRO's reference simplex

def original_layers(module: nn.Module):
    """(parameter name, shape, law) by the original's rule, read off the module's layer types:
    ('uniform', b) for U(-b, b), ('unit', None) for U(0, 1), ('zero', None)."""
    out = []
    for prefix, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            b = 1.0 / math.sqrt(m.in_channels * m.kernel_size[0] * m.kernel_size[1])  # its Conv2d.reset_parameters
            out += [(f"{prefix}.{n}", tuple(p.shape), ("uniform", b)) for n, p in m.named_parameters(recurse=False)]
        elif isinstance(m, nn.Linear):
            b = 1.0 / math.sqrt(m.in_features)
            out += [(f"{prefix}.{n}", tuple(p.shape), ("uniform", b)) for n, p in m.named_parameters(recurse=False)]
        elif isinstance(m, nn.BatchNorm2d):  # its _BatchNorm.reset_parameters: weight.uniform_(), bias.zero_()
            out += [(f"{prefix}.weight", tuple(m.weight.shape), ("unit", None)),
                    (f"{prefix}.bias", tuple(m.bias.shape), ("zero", None))]
    return out


def numpy_vertex(layers, rng) -> np.ndarray:
    parts = []
    for _, shape, (law, b) in layers:
        size = int(np.prod(shape))
        parts.append(rng.uniform(-b, b, size) if law == "uniform" else rng.uniform(0, 1, size) if law == "unit"
                     else np.zeros(size))
    return np.concatenate(parts)


def numpy_log_volume_sq(points: np.ndarray) -> float:
    """Cayley-Menger: V^2 = (-1)^n / (2^(n-1) ((n-1)!)^2) det [[0, 1^T], [1, D]], D the squared distances."""
    n = len(points)
    gram = points @ points.T
    sq = np.diag(gram)[:, None] + np.diag(gram)[None, :] - 2 * gram
    cm = np.ones((n + 1, n + 1))
    cm[0, 0] = 0
    cm[1:, 1:] = sq
    return math.log((-1) ** n * np.linalg.det(cm) / (2 ** (n - 1) * math.factorial(n - 1) ** 2))


def expected_log_volume_sq(layers, n: int) -> float:
    """The high-dimensional limit: the n random vertices' edges are orthogonal and of one squared length
    L^2 = 2 sum_p Var(w_p), so log V0^2 = (n - 1) log L^2 + log(n / (((n-1)!)^2 2^(n-1))), a regular simplex."""
    variance = {"uniform": lambda b: b * b / 3, "unit": lambda b: 1 / 12, "zero": lambda b: 0.0}
    edge_sq = 2 * sum(int(np.prod(shape)) * variance[law](b) for _, shape, (law, b) in layers)
    return (n - 1) * math.log(edge_sq) + math.log(n / (math.factorial(n - 1) ** 2 * 2 ** (n - 1)))


def small_resnet() -> nn.Module:
    return models.build_model("ResNet20", 10, in_channels=1, image_size=8)  # convolutions, BatchNorms, a linear layer


def test_reference_initialisation_is_simplex_nets():
    torch.manual_seed(0)
    module = small_resnet()
    simplex_net_init_(module)
    params = dict(module.named_parameters())
    layers = original_layers(module)
    assert {name for name, _, _ in layers} == set(params)  # every parameter of the model is one of the rule's
    for name, _, (law, b) in layers:
        p = params[name].detach().double()
        if law == "uniform":
            assert p.abs().max() <= b and (p.numel() < 500 or abs(p.var().item() / (b * b / 3) - 1) < 0.15), name
        elif law == "unit":
            assert 0 <= p.min() and p.max() <= 1 and abs(p.mean().item() - 0.5) < 0.2, name
        else:
            assert torch.equal(p, torch.zeros_like(p)), name


def test_reference_log_volume_is_the_originals_in_distribution():
    """Ours (curves.reference_volumes_sq) against vertices drawn by the original's rule in numpy, their
    volume by numpy's determinant, and the high-dimensional limit; He initialisation would be far off."""
    layers = original_layers(small_resnet())
    rng = np.random.default_rng(0)
    draws = 3
    theirs = np.array([[numpy_log_volume_sq(v[:k]) for k in (2, 3, 4)]
                       for v in (np.stack([numpy_vertex(layers, rng) for _ in range(4)]) for _ in range(draws))])
    ours = np.array([[math.log(v) for v in curves.reference_volumes_sq(small_resnet, 4, seed=s)[1:]]
                     for s in range(draws)])
    limit = np.array([expected_log_volume_sq(layers, k) for k in (2, 3, 4)])
    spread = theirs.std(0) + ours.std(0) + 0.01
    assert np.all(np.abs(ours.mean(0) - theirs.mean(0)) < 3 * spread), (ours, theirs)
    assert np.all(np.abs(theirs.mean(0) - limit) < 0.05 * np.arange(1, 4)), (theirs, limit)
    he = [math.log(v) for v in curves.reference_volumes_sq(small_resnet, 4, init=lambda m: None)[1:]]
    assert np.all(np.abs(np.array(he) - theirs.mean(0)) > 0.3)  # the model's own initialisation is another V0
    assert curves.reference_volumes_sq(small_resnet, 3, seed=5) == curves.reference_volumes_sq(small_resnet, 3, seed=5)


def test_vgg16s_reference_log_volume_is_the_originals():
    """The original's rule on VGG16 for CIFAR-10 (no drawing: the limit, exact to 0.01 at 15M weights):
    log V0^2 of 8.16, 14.65 and 20.21 for 2, 3 and 4 vertices. Our draw gives 8.164, 14.652, 20.213."""
    with torch.device("meta"):
        layers = original_layers(models.build_model("VGG16", 10))
    assert [round(expected_log_volume_sq(layers, k), 2) for k in (2, 3, 4)] == [8.16, 14.65, 20.21]


# --------------------------------------------------------------------------- lambda

def original_lambda(lmbd: float, volume_sq: float) -> float:
    """simplex_trainer.py / ensemble_trainer.py: max(LMBD / log(V0^2 + 1e-4), 1e-8)."""
    return max(lmbd / math.log(volume_sq + 1e-4), 1e-8)


@pytest.mark.parametrize("log_v0_sq", [8.16, 14.65, 20.21, 40.0, 150.0])
def test_our_mean_at_a_fifth_of_lambda_is_the_originals_sum(log_v0_sq):
    """The original's loss: sum of the 5 points' losses - lambda log(V^2 + 1e-4). Ours at --volume_reg
    2e-7: their mean - spro_lambda(2e-7, V0^2) log(V^2 + 1e-4), five times smaller in value and gradient
    at every vertex count, also where the floor decides (log V0^2 > 100, the original's 1e-6 / log < 1e-8).
    A floor of 1e-8 left unscaled would decide ours from log V0^2 = 20 on (2e-7 / 20.21 < 1e-8)."""
    v0_sq = math.exp(log_v0_sq)
    torch.manual_seed(0)
    w = torch.randn(6, dtype=torch.float64, requires_grad=True)
    edges = torch.randn(3, 6, dtype=torch.float64)
    losses = torch.stack([((w - e) ** 2).sum() for e in torch.randn(5, 6, dtype=torch.float64)])
    log_volume = torch.log(torch.det(torch.cat([edges, w[None]]) @ torch.cat([edges, w[None]]).T) + 1e-4)
    theirs = losses.sum() - original_lambda(1e-6, v0_sq) * log_volume
    ours = losses.mean() - curves.spro_lambda(2e-7, v0_sq) * log_volume
    torch.testing.assert_close(5 * ours, theirs, rtol=1e-12, atol=0)
    torch.testing.assert_close(5 * torch.autograd.grad(ours, w, retain_graph=True)[0], torch.autograd.grad(theirs, w)[0],
                               rtol=1e-12, atol=0)
    assert curves.spro_lambda(1e-6, v0_sq) == pytest.approx(original_lambda(1e-6, v0_sq), rel=1e-12)
    assert (original_lambda(1e-6, v0_sq) == 1e-8) == (log_v0_sq > 100)
    unscaled = max(2e-7 / math.log(v0_sq + 1e-4), 1e-8)
    assert (5 * unscaled == pytest.approx(original_lambda(1e-6, v0_sq), rel=1e-9)) == (log_v0_sq < 20)


# --------------------------------------------------------------------------- ECE

def original_ece(probs: np.ndarray, labels: np.ndarray, M: int = 20) -> float:
    """learning-subspaces' trainers/default.py test(), its loop as written."""
    acc_bm, conf_bm = np.zeros(M), np.zeros(M)
    pred = probs.argmax(1)
    for i in range(len(labels)):
        conf = probs[i][pred[i]]
        bin_idx = min(int(conf * M), M - 1)
        acc_bm[bin_idx] += float(pred[i] == labels[i])
        conf_bm[bin_idx] += conf
    return float(sum(abs(acc_bm[i] - conf_bm[i]) for i in range(M)) / len(labels))


def test_ece_is_learning_subspaces_loop():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(10, 0.3), size=500)
    labels = rng.integers(0, 10, 500)
    # confidences on bin edges, where the side a bin closes on matters: 0.5, 0.55, 0.6, 0.95 and 1
    edges = np.array([[0.5, 0.5, 0], [0.55, 0.45, 0], [0.6, 0.4, 0], [0.95, 0.05, 0], [1.0, 0, 0],
                      [0.5, 0.25, 0.25], [0.55, 0.3, 0.15], [0.6, 0.2, 0.2]])
    for p, y in ((probs, labels), (edges, np.array([0, 1, 0, 0, 0, 1, 0, 2]))):
        for bins in (20, 15):
            assert utils.expected_calibration_error(p, y, bins) == pytest.approx(original_ece(p, y, bins), abs=1e-12)


@pytest.mark.parametrize("script,bins", [("train_subspace", 20), ("simplex", 15), ("train", 15), ("swa", 15),
                                         ("fge", 15), ("eval_ensemble", 15)])
def test_each_scripts_ece_bins_default(script, bins):
    """learning-subspaces' M = 20 for its scripts; the others' originals report no ECE (15, Guo et al.'s)."""
    module = __import__(script)
    parser = module.build_parser()
    required = {"simplex": ["--ckpt=x"], "eval_ensemble": ["--ckpt=x"]}.get(script, [])
    assert module.ECE_BINS == bins and parser.parse_args(required).ece_bins == bins
    assert f"(default: {bins}" in parser.format_help().replace("\n", " ")


# --------------------------------------------------------------------------- ensembles of logits

def original_logit_ensemble(members: list[np.ndarray], labels: np.ndarray) -> dict:
    """learning-subspaces: the argmax of the summed logits (trainers/ensemble.py); NLL and ECE of the
    softmax of the mean logits (trainers/simplex_ensembles.py: criterion(mean_output), M = 20)."""
    mean = sum(members) / len(members)
    log_probs = mean - np.log(np.exp(mean - mean.max(1, keepdims=True)).sum(1, keepdims=True)) - mean.max(1, keepdims=True)
    return {"accuracy": 100.0 * float(np.mean(sum(members).argmax(1) == labels)),
            "nll": float(-log_probs[np.arange(len(labels)), labels].mean()),
            "ece": original_ece(np.exp(log_probs), labels, 20)}


def test_logit_ensemble_is_learning_subspaces():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 300)
    members = [3 * rng.normal(size=(300, 5)) for _ in range(3)]
    ensemble = ensembles.LogitEnsemble()
    for m in members:
        ensemble.add(m)
    assert ensemble.metrics(labels, 20) == pytest.approx(original_logit_ensemble(members, labels), abs=1e-9)
    # the rule matters: one confident member outvotes two mildly right ones in probabilities, not in logits
    a, b = np.array([[0.0, 1.0]]), np.array([[6.0, 0.0]])
    logits = ensembles.LogitEnsemble()
    probs = ensembles.ProbabilityEnsemble()
    for m in (a, a, b):
        logits.add(m)
        probs.add(torch.softmax(torch.from_numpy(m), 1).numpy())
    assert logits.metrics(np.array([0]))["accuracy"] == 100.0 and probs.metrics(np.array([0]))["accuracy"] == 100.0
    assert logits.metrics(np.array([1]))["accuracy"] == 0.0
    c = np.array([[0.0, 1.5]])
    logits, probs = ensembles.LogitEnsemble(), ensembles.ProbabilityEnsemble()
    for m in (c, c, b):
        logits.add(m)
        probs.add(torch.softmax(torch.from_numpy(m), 1).numpy())
    assert logits.metrics(np.array([0]))["accuracy"] == 100.0 and probs.metrics(np.array([0]))["accuracy"] == 0.0


@pytest.mark.parametrize("combine", ["logits", "probabilities"])
def test_eval_ensemble_combines_by_the_chosen_rule(combine, tmp_path):
    import data

    paths = [random_checkpoint(tmp_path / f"net{s}.pt", "MLP", seed=s) for s in (1, 2, 3)]
    folder = tmp_path / combine
    cli.run(eval_ensemble.main, ["--dataset=DIGITS", "--use_test", f"--combine={combine}", f"--dir={folder}",
                                 "--ece_bins=20", *[f"--ckpt={p}" for p in paths]])
    summary = json.loads((folder / "summary.json").read_text())
    loader = data.make_loaders(data.load_dataset("DIGITS", use_test=True), batch_size=32, transform="VGG")["test"]
    members = []
    for path in paths:
        net = models.model_from_checkpoint(runtime.load_checkpoint(path, kind="model"), "cpu").eval()
        with torch.no_grad():
            members.append(torch.cat([net(x) for x, _ in loader]).double().numpy())
    labels = loader.labels.numpy()
    if combine == "logits":
        expected = original_logit_ensemble(members, labels)
    else:  # the mode-connectivity code's eval_ensemble.py: the mean of softmax probabilities
        mean = np.mean([torch.softmax(torch.from_numpy(m), 1).numpy() for m in members], 0)
        expected = {"accuracy": 100.0 * float(np.mean(mean.argmax(1) == labels)),
                    "nll": float(-np.log(mean[np.arange(len(labels)), labels]).mean()),
                    "ece": original_ece(mean, labels, 20)}
    assert summary["combine"] == combine and summary["ensemble_size"] == 3
    assert (summary["ens_acc"], summary["ens_nll"], summary["ens_ece"]) == \
        pytest.approx((expected["accuracy"], expected["nll"], expected["ece"]), abs=1e-5)


# --------------------------------------------------------------------------- cResNet20

def open_lth_cifar_resnet_20(num_classes: int = 10) -> int:
    """learning-subspaces' models/cifar_resnet.py with its Builder, counted by hand: bias-free 3x3
    convolutions, BatchNorms, at each of the two downsampling blocks a bias-free 1x1 convolution and a
    BatchNorm, and a bias-free 1x1 convolution 64 -> classes as the classifier."""
    total, previous = 3 * 16 * 9 + 2 * 16, 16
    for width in (16, 32, 64):
        for block in range(3):
            total += previous * width * 9 + 2 * width + width * width * 9 + 2 * width
            if previous != width:
                total += previous * width + 2 * width
            previous = width
    return total + 64 * num_classes


def test_cresnet20_is_learning_subspaces():
    model = models.build_model("cResNet20", 10)
    assert sum(p.numel() for p in model.parameters()) == open_lth_cifar_resnet_20() == 272_464
    assert model.fc.bias is None
    # the cos^2 runs over every nn.Conv2d weight there: every parameter but BatchNorm's, here too
    line = curves.SubspaceModel(model, "PolyChain", 2, seed=0)
    batchnorm = {f"{n}.{p}" for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) for p in ("weight", "bias")}
    assert {line.names[s] for s in line.cosine_slots} == set(line.names) - batchnorm
