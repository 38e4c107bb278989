"""SWAG (ensembles.swag, swa.py --swag, swag.py): the moments against numpy on recorded weight
trajectories, the draws' covariance against the SWAG code's formula, the scripts end to end on
DIGITS, a killed run continued, and bad input."""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

import data
import ensembles
import models
import swa
import swag
import utils
from conftest import ROOT, user_error


class Tiny(nn.Module):
    """8 weights: a 3 -> 2 linear layer; ``first`` registers the bias first (other order, same names)."""

    def __init__(self, first: str = "weight"):
        super().__init__()
        self.layer = nn.Linear(3, 2)
        if first == "bias":
            layer = nn.Module()
            layer.bias = nn.Parameter(torch.zeros(2))
            layer.weight = nn.Parameter(torch.zeros(2, 3))
            layer.forward = lambda x: x @ layer.weight.T + layer.bias
            self.layer = layer

    def forward(self, x):
        return self.layer(x)


def trajectory(n: int, seed: int = 0, spread: float = 0.1) -> np.ndarray:
    """``n`` weight vectors of Tiny (weight row-major, then bias), float32: a correlated random walk."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=8)
    steps = rng.normal(size=(n, 8)) @ rng.normal(size=(8, 8)) * spread
    return (base + np.cumsum(steps, 0)).astype(np.float32)


def load(model: nn.Module, theta: np.ndarray) -> nn.Module:
    params = dict(model.named_parameters())
    with torch.no_grad():
        params["layer.weight"].copy_(torch.from_numpy(theta[:6].reshape(2, 3)))
        params["layer.bias"].copy_(torch.from_numpy(theta[6:]))
    return model


def collected(thetas: np.ndarray, k: int = 20, cov_mat: bool = True) -> ensembles.SWAG:
    model = Tiny()
    collector = ensembles.SWAG(model, k, cov_mat)
    for theta in thetas:
        collector.collect(load(model, theta))
    return collector


def numpy_deviations(thetas: np.ndarray, k: int) -> np.ndarray:
    """The SWAG code's rule in float64: after each model, its deviation from the mean of the models so far."""
    thetas = thetas.astype(np.float64)
    devs = [theta - thetas[:i + 1].mean(0) for i, theta in enumerate(thetas)]
    return np.array(devs[-k:])


def test_the_moments_against_numpy_on_a_trajectory():
    thetas = trajectory(7)
    collector = collected(thetas, k=4)
    assert collector.n_models == 7 and collector.rank == 4
    np.testing.assert_allclose(collector.mean.numpy(), thetas.astype(np.float64).mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(collector.var.numpy(), thetas.astype(np.float64).var(0), rtol=1e-5, atol=1e-7)
    # D: the last K = 4 deviations, oldest first, each from the mean after its own update
    np.testing.assert_allclose(collector.deviation_matrix().numpy(), numpy_deviations(thetas, 4), rtol=1e-5, atol=1e-6)
    # the named views are the model's parameters
    state = collector.state_dict_of(collector.mean)
    assert state["layer.weight"].shape == (2, 3) and torch.equal(state["layer.bias"], collector.mean[6:])


def test_k_not_reached_and_a_weight_that_never_moves():
    thetas = trajectory(3)
    thetas[:, 7] = 0.25  # a bias that no step changes: variance 0, clamped to the original's 1e-30
    collector = collected(thetas, k=20)
    assert collector.rank == 3 and collector.deviation_matrix().shape == (3, 8)
    np.testing.assert_allclose(collector.deviation_matrix().numpy(), numpy_deviations(thetas, 20), atol=1e-6)
    assert collector.var[7] == 0 and collector.variance()[7] == pytest.approx(1e-30)
    one = collected(thetas[:1], k=20)  # one model: the deviation is 0, nothing but the mean to draw
    assert one.rank == 1 and torch.equal(one.deviation_matrix(), torch.zeros(1, 8))
    assert torch.allclose(one.sample(0.5), one.mean, atol=1e-12)


def test_the_mean_is_torchs_swa_average_bit_for_bit():
    thetas, model = trajectory(6), Tiny()
    average = ensembles.averaged_model(model)
    collector = ensembles.SWAG(model)
    for theta in thetas:
        load(model, theta)
        average.update_parameters(model)
        collector.collect(model)
    for name, value in collector.state_dict_of(collector.mean).items():
        assert torch.equal(value, dict(average.module.named_parameters())[name]), name


def test_the_variance_keeps_its_digits_where_the_mean_of_squares_cancels():
    """Weights far larger than their spread (|theta| / std = 1e4, as many trained weights): the SWAG
    code's float32 E[theta^2] - E[theta]^2 loses the variance, Welford's update keeps it."""
    rng = np.random.default_rng(1)
    thetas = (10.0 + 1e-3 * rng.normal(size=(30, 8))).astype(np.float32)
    reference = thetas.astype(np.float64).var(0)
    mean = sq = None
    for i, theta in enumerate(torch.from_numpy(thetas)):  # the original's collect_model, float32
        mean = theta.clone() if mean is None else mean * i / (i + 1.0) + theta / (i + 1.0)
        sq = theta ** 2 if sq is None else sq * i / (i + 1.0) + theta ** 2 / (i + 1.0)
    naive = torch.clamp(sq - mean ** 2, 1e-30).double().numpy()
    assert np.abs(naive / reference - 1).max() > 1  # off by more than 100%
    ours = collected(thetas, cov_mat=False).variance().double().numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-3)


@pytest.mark.parametrize("cov,k,n,draws", [(True, 4, 7, 20_000), (True, 20, 5, 5_000), (False, 20, 5, 5_000)])
def test_the_draws_covariance_is_the_formulas(cov, k, n, draws):
    """Many draws against scale * (diag(var) + D^T D / (K' - 1)) (the SWAG code's sample_fullrank
    and its test of it; the paper's Sigma at scale 0.5), written out from numpy's moments."""
    thetas, scale = trajectory(n), 0.5
    collector = collected(thetas, k=k)
    t64 = thetas.astype(np.float64)
    expected = np.diag(t64.var(0))
    if cov:
        d = numpy_deviations(thetas, k)
        expected = expected + d.T @ d / (len(d) - 1)  # K' = min(n, K) deviations kept
    expected = scale * expected
    generator = torch.Generator().manual_seed(0)
    tolerance = 5 / np.sqrt(draws)  # about 5 standard errors of a covariance entry, relative to the largest
    draws = torch.stack([collector.sample(scale, cov, generator) for _ in range(draws)]).double().numpy()
    np.testing.assert_allclose(draws.mean(0), t64.mean(0), atol=tolerance * np.sqrt(expected.diagonal().max()))
    np.testing.assert_allclose(np.cov(draws.T), expected, atol=tolerance * expected.diagonal().max())
    np.testing.assert_allclose(collector.covariance(scale, cov).numpy(), expected, rtol=1e-4, atol=1e-7)
    # a seed is a draw; scale 0 is the mean itself
    first = collector.sample(scale, cov, torch.Generator().manual_seed(3))
    assert torch.equal(first, collector.sample(scale, cov, torch.Generator().manual_seed(3)))
    assert torch.equal(collector.sample(0.0, cov), collector.mean)


def test_parameters_are_matched_by_name_and_the_state_resumes():
    thetas = trajectory(6)
    whole = collected(thetas, k=3)
    # half, through a file as a checkpoint holds it, then the rest into a model of another order
    half = collected(thetas[:3], k=3)
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"swag-state-{os.getpid()}.pt")
    torch.save({"swag_state": half.state_dict()}, path)
    state = torch.load(path, weights_only=True)["swag_state"]
    os.remove(path)
    other = Tiny(first="bias")
    assert [n for n, _ in other.named_parameters()] == ["layer.bias", "layer.weight"]
    resumed = ensembles.SWAG.from_state_dict(Tiny(), state)
    for theta in thetas[3:]:
        resumed.collect(load(other, theta))
    for key in ("mean", "var"):
        assert torch.equal(getattr(resumed, key), getattr(whole, key)), key
    assert torch.equal(resumed.deviation_matrix(), whole.deviation_matrix())
    assert [t.data_ptr() for t in state["deviations"]] != [t.data_ptr() for t in resumed.deviations]  # copied
    adopted = ensembles.SWAG.from_state_dict(Tiny(), state, assign=True)
    assert adopted.mean is state["mean"] and adopted.deviations[0] is state["deviations"][0]
    with pytest.raises(ValueError, match="not this SWAG's"):
        resumed.collect(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="another model"):
        ensembles.SWAG(nn.Sequential(nn.Linear(3, 2)), 3).load_state_dict(state)
    with pytest.raises(ValueError, match="without the low-rank part"):
        collected(thetas, cov_mat=False).sample(0.5, cov=True)


def tiny_bn(num_classes: int = 3, in_channels: int = 1, image_size: int = 8) -> nn.Module:
    """A convolution with BatchNorm, small enough for many BatchNorm passes."""
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, num_classes))


def test_the_average_recomputes_batchnorm_for_every_draw():
    """Each draw's probabilities against torch's own BatchNorm update (swa_utils.update_bn, over the
    same augmented batches: equal sizes, where its equal weights are ours) and a plain forward."""
    torch.manual_seed(0)
    net = tiny_bn()
    images = data.ImageSet(torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8), torch.randint(0, 3, (40,)))
    train = data.Loader(images, 10, (0.5,), (0.25,), augment=True, padding=1, flip=True, seed=1)
    test = data.Loader(images, 16, (0.5,), (0.25,))
    collector = ensembles.SWAG(net, 3)
    with torch.no_grad():
        for _ in range(4):
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))
            collector.collect(net)
    draws = list(ensembles.bayesian_model_average(collector, copy.deepcopy(net), train, test, 3, scale=0.5,
                                                  seed=7, draw=5))
    for d in draws:
        reference = copy.deepcopy(net)
        collector.load_weights(reference, collector.sample(0.5, None, ensembles.sample_generator(7, d.index)))
        train.set_epoch(5)
        torch.optim.swa_utils.update_bn([x for x, _ in train], reference)
        reference.eval()
        with torch.no_grad():
            probs = torch.softmax(torch.cat([reference(x) for x, _ in test]), 1).numpy()
        np.testing.assert_allclose(d.probs, probs, atol=1e-6)
    assert not np.allclose(draws[0].probs, draws[1].probs, atol=1e-3)
    np.testing.assert_allclose(draws[-1].ensemble.probs, np.mean([d.probs for d in draws], 0), atol=1e-7)


def test_reliability_bins_are_eces(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4) * 0.5, size=500)
    labels = rng.integers(0, 4, size=500)
    r = ensembles.reliability(probs, labels, bins=10)
    assert r["count"].sum() == 500 and r["ece"] == utils.expected_calibration_error(probs, labels, bins=10)
    filled = r["count"] > 0
    by_hand = np.sum(r["count"][filled] / 500 * np.abs(r["gap"][filled]))
    assert by_hand == pytest.approx(r["ece"])
    confidence = probs.max(1)  # bin 9 holds [0.9, 1.0]
    assert r["count"][9] == np.sum(confidence >= 0.9)
    # side by side for a few models, on one axis for an ensemble's many members
    for count in (2, 6):
        path = tmp_path / f"reliability-{count}.png"
        predictions = {f"model {i}": np.roll(probs, i, axis=1) for i in range(count)}
        ensembles.plot_reliability(str(path), predictions, labels, title="t", highlight=("model 0",))
        assert path.stat().st_size > 10_000


# --------------------------------------------------------------------------- the scripts on DIGITS

DIGITS = ["--dataset=DIGITS", "--use_test", "--batch_size=128"]  # 12 steps an epoch
SWAG_RUN = [*DIGITS, "--model=MLP", "--epochs=4", "--lr_init=0.1", "--swa_start=2", "--swa_lr=0.02",
            "--eval_freq=1", "--save_freq=2", "--max_num_models=2", "--seed=3"]


def summary(folder, name: str = "summary.json") -> dict:
    return json.loads((folder / name).read_text())


@pytest.fixture(scope="module")
def swag_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("swag") / "run"
    swa.main([f"--dir={folder}", *SWAG_RUN, "--swag"])
    return folder


def test_swa_with_swag_writes_swag_pt_and_changes_nothing_else(swag_run, tmp_path):
    ckpt = torch.load(swag_run / "swag.pt", weights_only=True)
    assert ckpt["kind"] == "swag" and ckpt["model"] == "MLP" and ckpt["dataset"] == "DIGITS"
    assert ckpt["use_test"] is True and ckpt["swag_n"] == 3 and ckpt["swag_state"]["n_models"] == 3
    assert ckpt["args"]["swag"] and len(ckpt["swag_state"]["deviations"]) == 2  # K = 2
    # the SGD baseline: the last iterate, checkpoint-4.pt's weights
    last = torch.load(swag_run / "checkpoint-4.pt", weights_only=True)
    assert last["swag_state"]["n_models"] == 3
    assert all(torch.equal(v, last["model_state"][k]) for k, v in ckpt["model_state"].items())
    # one trajectory, both results: SWAG's mean is swa.pt's average (on a CPU bit for bit)
    average = torch.load(swag_run / "swa.pt", weights_only=True)["model_state"]
    model = models.model_from_checkpoint(ckpt)
    collector = ensembles.SWAG.from_state_dict(model, ckpt["swag_state"])
    for name, value in collector.state_dict_of(collector.mean).items():
        assert torch.equal(value, average[name]), name
    # without --swag: the same run, bit for bit
    plain = tmp_path / "plain"
    swa.main([f"--dir={plain}", *SWAG_RUN, "--swa"])
    assert not (plain / "swag.pt").exists() and "swag_state" not in torch.load(plain / "last.pt" if (
        plain / "last.pt").exists() else plain / "checkpoint-4.pt", weights_only=True)
    for name, value in torch.load(plain / "swa.pt", weights_only=True)["model_state"].items():
        assert torch.equal(value, average[name]), name
    with_swag = summary(swag_run)
    assert with_swag.pop("swag_n") == 3 and with_swag == summary(plain)


@pytest.fixture(scope="module")
def evaluated(swag_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("bma") / "bma"
    swag.main([f"--dir={out}", f"--ckpt={swag_run}", "--num_samples=6", "--ece_bins=15"])  # swa.py's
    return out


def test_swag_py_on_swa_pys_run(swag_run, evaluated):
    result = summary(evaluated)
    for name in ("swag", "swa", "sgd"):
        for key in ("acc", "nll", "ece"):
            assert isinstance(result[f"{name}_{key}"], float), (name, key)
    assert (result["num_samples"], result["scale"], result["cov_mat"], result["rank"]) == (6, 0.5, True, 2)
    # SWA and SGD are swa.py's figures: the same BatchNorm pass, the same networks
    trained = summary(swag_run)
    assert result["swa_acc"] == trained["swa_test_acc"] and result["sgd_acc"] == trained["sgd_test_acc"]
    assert result["swa_ece"] == pytest.approx(trained["swa_test_ece"], abs=1e-6)
    assert result["swa_nll"] == pytest.approx(trained["swa_test_nll"], rel=1e-5)
    assert result["sgd_nll"] == pytest.approx(trained["sgd_test_nll"], rel=1e-5)
    rows = (evaluated / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("sample,sample_acc") and len(rows) == 7
    assert float(rows[-1].split(",")[4]) == pytest.approx(result["swag_acc"])
    assert {"reliability.png", "predictions.npz", "command.sh", "args.json"} <= set(os.listdir(evaluated))
    arrays = np.load(evaluated / "predictions.npz")
    assert arrays["swag"].shape == arrays["swa"].shape == (360, 10)
    assert utils.prediction_metrics(arrays["swag"].astype(np.float64), arrays["labels"])["accuracy"] == \
        pytest.approx(result["swag_acc"])
    assert not np.array_equal(arrays["swag"], arrays["swa"])


@pytest.fixture(scope="module")
def bn_run(tmp_path_factory):
    """swa.py --swag of a model with BatchNorm (registered for this module's in-process runs only)."""
    models.MODELS["TinyBN"], models.TRANSFORMS["TinyBN"] = tiny_bn, "VGG"
    try:
        folder = tmp_path_factory.mktemp("bn") / "run"
        swa.main([f"--dir={folder}", *DIGITS, "--model=TinyBN", "--epochs=3", "--lr_init=0.1", "--swag",
                  "--swa_start=1", "--swa_lr=0.05", "--eval_freq=3", "--save_freq=3", "--max_num_models=2"])
        yield folder
    finally:
        del models.MODELS["TinyBN"], models.TRANSFORMS["TinyBN"]


def test_scale_zero_is_swa_exactly_and_swa_is_swa_pys(bn_run, tmp_path):
    """BatchNorm recomputed for SWA's mean and for every draw with swa.py's last pass: at scale 0
    every draw is SWA, and SWA's figures are swa.py's."""
    swag.main([f"--dir={tmp_path}", f"--ckpt={bn_run / 'swag.pt'}", "--num_samples=2", "--scale=0",
               "--ece_bins=15"])
    arrays, result = np.load(tmp_path / "predictions.npz"), summary(tmp_path)
    assert np.array_equal(arrays["swag"], arrays["swa"])
    assert all(result[f"swag_{k}"] == result[f"swa_{k}"] for k in ("acc", "nll", "ece"))
    trained = summary(bn_run)
    assert result["swa_acc"] == trained["swa_test_acc"] and result["sgd_acc"] == trained["sgd_test_acc"]
    assert result["swa_ece"] == pytest.approx(trained["swa_test_ece"], abs=1e-6)
    assert result["swa_nll"] == pytest.approx(trained["swa_test_nll"], rel=1e-5)
    # and at the paper's scale the draws are other networks
    other = tmp_path / "drawn"
    swag.main([f"--dir={other}", f"--ckpt={bn_run}", "--num_samples=2"])
    assert not np.array_equal(np.load(other / "predictions.npz")["swag"], arrays["swa"])


def test_swag_diagonal_from_a_low_rank_run(swag_run, tmp_path):
    swag.main([f"--dir={tmp_path}", f"--ckpt={swag_run}", "--num_samples=1", "--use_diag", "--seed=5"])
    result = summary(tmp_path)
    assert result["cov_mat"] is False and result["rank"] == 0
    assert json.loads((tmp_path / "args.json").read_text())["ece_bins"] == 20  # the SWAG code's


def test_swa_with_swag_resumed_and_killed_gives_the_same_swag_pt(swag_run, tmp_path):
    expected = torch.load(swag_run / "swag.pt", weights_only=True)
    # --resume from the kept checkpoint after epoch 2 (SWAG holds one model there) into another folder
    resumed = tmp_path / "resumed"
    swa.main([f"--dir={resumed}", f"--resume={swag_run / 'checkpoint-2.pt'}"])
    # and the command killed (SIGKILL) within its third epoch, then started again
    killed = tmp_path / "killed"
    command = [sys.executable, os.path.join(ROOT, "swa.py"), f"--dir={killed}", *SWAG_RUN, "--swag"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while process.poll() is None and not (killed / "checkpoint-2.pt").exists():
        assert time.time() < deadline
        time.sleep(0.02)
    process.kill()
    process.wait()
    swa.main([f"--dir={killed}", *SWAG_RUN, "--swag"])
    for folder in (resumed, killed):
        got = torch.load(folder / "swag.pt", weights_only=True)
        for key in ("mean", "var", "deviations"):
            a, b = got["swag_state"][key], expected["swag_state"][key]
            assert torch.equal(torch.stack(a), torch.stack(b)) if key == "deviations" else torch.equal(a, b), key
        assert got["swag_state"]["n_models"] == 3
        assert all(torch.equal(v, expected["model_state"][k]) for k, v in got["model_state"].items())


def test_swag_py_stopped_and_started_again(swag_run, evaluated, tmp_path):
    """SIGTERM after the first draw: exit 75 with last.pt; the same command goes on to the same result."""
    out = tmp_path / "bma"
    args = [f"--dir={out}", f"--ckpt={swag_run}", "--num_samples=6", "--ece_bins=15"]
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "swag.py"), *args], cwd=ROOT,
                               env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while process.poll() is None and not (out / "metrics.csv").exists():
        assert time.time() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 75, process.stderr.read()
    done = len((out / "metrics.csv").read_text().splitlines()) - 1
    assert 1 <= done < 6
    swag.main(args)
    assert summary(out) == summary(evaluated)
    commands = (out / "command.sh").read_text().splitlines()
    assert len(commands) == 3  # the shebang, the first start and the second


def test_bad_input(swag_run, tmp_path, capsys):
    out = tmp_path / "out"
    common = [f"--dir={out}"]
    model_ckpt = swag_run / "swa.pt"
    assert "not the 'swag' checkpoint" in user_error(capsys, swag.main, *common, f"--ckpt={model_ckpt}")
    curve = tmp_path / "curve.pt"
    ckpt = torch.load(model_ckpt, weights_only=True)
    ckpt.update(kind="curve", curve="Bezier", num_bends=3)
    torch.save(ckpt, curve)
    assert "'curve'" in user_error(capsys, swag.main, *common, f"--ckpt={curve}")
    assert "does not exist" in user_error(capsys, swag.main, *common, f"--ckpt={tmp_path / 'missing.pt'}")
    assert "holds no swag.pt" in user_error(capsys, swag.main, *common, f"--ckpt={tmp_path}")
    assert "non-negative" in user_error(capsys, swag.main, *common, f"--ckpt={swag_run}", "--scale=-1")
    assert "at least 1" in user_error(capsys, swag.main, *common, f"--ckpt={swag_run}", "--num_samples=0")
    diagonal = tmp_path / "diag.pt"
    ckpt = torch.load(swag_run / "swag.pt", weights_only=True)
    ckpt["swag_state"].update(cov_mat=False, deviations=None)
    torch.save(ckpt, diagonal)
    assert "without the low-rank part" in user_error(capsys, swag.main, *common, f"--ckpt={diagonal}", "--cov_mat")
    # swa.py: --swag added with --resume after SWA began cannot make up the moments
    plain = tmp_path / "plain"
    swa.main([f"--dir={plain}", *DIGITS, "--model=MLP", "--epochs=2", "--swa", "--swa_start=1",
              "--save_freq=1", "--eval_freq=2"])
    capsys.readouterr()
    assert "holds no SWAG moments" in user_error(capsys, swa.main, f"--resume={plain / 'checkpoint-1.pt'}",
                                                 f"--dir={tmp_path / 'more'}", "--swag", "--epochs=3")
    assert "at least 2" in user_error(capsys, swa.main, *common, *SWAG_RUN[:-2], "--swag", "--max_num_models=1")
    assert not out.exists() and not (tmp_path / "more").exists()
    # in the run's own folder: left as it was
    before = {name: (swag_run / name).read_bytes() for name in os.listdir(swag_run)}
    assert "not the 'swag' checkpoint" in user_error(capsys, swag.main, f"--dir={swag_run}", f"--ckpt={model_ckpt}")
    assert {name: (swag_run / name).read_bytes() for name in os.listdir(swag_run)} == before
