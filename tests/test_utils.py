"""utils.py: the schedule, the BatchNorm update, metrics, checkpoints and run records."""
import csv
import json
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

import data
import models
import runtime
import utils
from runtime.errors import DivergedError, UserError


@pytest.mark.parametrize("epoch,factor", [(0, 1.0), (100, 1.0), (120, 1 - 0.1 / 0.4 * 0.99),
                                          (140, 1 - 0.2 / 0.4 * 0.99), (180, 0.01), (199, 0.01)])
def test_papers_schedule(epoch, factor):
    # 200 epochs: constant to epoch 100, linear to 1% at epoch 180, then constant
    assert utils.learning_rate_schedule(0.05, epoch, 200) == pytest.approx(0.05 * factor)


def test_update_bn_is_the_exact_mean_and_variance_of_batches():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    xs = torch.randn(50, 4) * 3 + 1
    batches = [(xs[i:i + 16], None) for i in range(0, 50, 16)]  # 16, 16, 16, 2: a short last batch
    utils.update_bn(net, batches)
    with torch.no_grad():
        h = net[0](xs)
        sizes = torch.tensor([16.0, 16, 16, 2])
        means = torch.stack([h[i:i + 16].mean(0) for i in range(0, 50, 16)])
        variances = torch.stack([h[i:i + 16].var(0, unbiased=True) for i in range(0, 50, 16)])
    bn = net[1]
    # every example counts once: the mean is the data's mean, the variance the size-weighted one
    torch.testing.assert_close(bn.running_mean, h.mean(0))
    torch.testing.assert_close(bn.running_mean, (sizes[:, None] * means).sum(0) / 50)
    torch.testing.assert_close(bn.running_var, (sizes[:, None] * variances).sum(0) / 50)
    assert bn.momentum == 0.1  # the layer's own momentum is restored


def test_update_bn_with_a_callable_and_without_batchnorm():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    xs = torch.randn(10, 2)
    utils.update_bn(net, [(xs, None)], forward=lambda x: net(2 * x))
    torch.testing.assert_close(net[1].running_mean, net[0](2 * xs).mean(0).detach())
    utils.update_bn(nn.Linear(2, 2), [(xs, None)])  # nothing to do, no error


def test_expected_calibration_error_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    # 15 bins, bin floor(15 p): 0.9 -> bin 13, 0.8 -> bin 12, 0.7 -> bin 10, 0.55 -> bin 8; each bin holds one example
    expected = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(0 - 0.55)) / 4
    assert utils.expected_calibration_error(probs, labels) == pytest.approx(expected)
    metrics = utils.prediction_metrics(probs, labels)
    assert metrics["accuracy"] == 50.0
    assert metrics["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.7, 0.45])))


def test_evaluate_agrees_with_cross_entropy():
    torch.manual_seed(0)
    net = nn.Linear(3, 4)
    x, y = torch.randn(30, 3), torch.randint(0, 4, (30,))
    batches = [(x[:20], y[:20]), (x[20:], y[20:])]
    result = utils.evaluate(net, batches, regularizer=lambda: torch.tensor(0.5))
    with torch.no_grad():
        logits = net(x)
    assert result["nll"] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert result["loss"] == pytest.approx(result["nll"] + 0.5)
    assert result["accuracy"] == pytest.approx(100 * (logits.argmax(1) == y).float().mean().item())


def test_train_epoch_sets_learning_rate_per_iteration_and_adds_the_regulariser():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    batches = [(torch.randn(4, 3), torch.randint(0, 2, (4,))) for _ in range(4)]
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    seen = []
    result = utils.train_epoch(net, batches, optimizer, lr_fn=lambda f: seen.append(f) or 0.0,
                               regularizer=lambda: torch.tensor(2.0))
    assert seen == [0.0, 0.25, 0.5, 0.75]
    assert result["loss"] == pytest.approx(result["nll"] + 2.0)
    bad = [(torch.full((4, 3), float("nan")), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(DivergedError):
        utils.train_epoch(net, bad, optimizer)


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    dataset = data.load_dataset("DIGITS", use_test=True)
    model = models.build_model("PreResNet20", 10, 1, 8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    optimizer.step()
    state = runtime.model_checkpoint("PreResNet20", model, num_classes=10,
                                   model_kwargs={"in_channels": 1, "image_size": 8}, dataset=dataset.name,
                                   transform="VGG", epoch=7, optimizer=optimizer, args={"lr": 0.1})
    path = os.path.join(str(tmp_path), "checkpoint-7.pt")
    runtime.save_checkpoint(path, state)
    assert os.listdir(tmp_path) == ["checkpoint-7.pt"]  # no temporary file left behind
    raw = torch.load(path, weights_only=True)
    for key in ("kind", "model", "model_kwargs", "num_classes", "dataset", "transform", "epoch",
                "model_state", "optimizer_state", "args"):
        assert key in raw
    ckpt = runtime.load_checkpoint(path, kind="model", model="PreResNet20", num_classes=10)
    rebuilt = models.model_from_checkpoint(ckpt).eval()
    model.eval()
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(rebuilt(x), model(x))
    with pytest.raises(UserError, match="'curve' checkpoint is needed"):
        runtime.load_checkpoint(path, kind="curve")
    with pytest.raises(UserError, match="not VGG16"):
        runtime.load_checkpoint(path, model="VGG16")
    with pytest.raises(UserError, match="100"):
        runtime.load_checkpoint(path, num_classes=100)
    with pytest.raises(UserError, match="does not exist"):
        runtime.load_checkpoint(str(tmp_path / "nope.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read"):
        runtime.load_checkpoint(str(tmp_path / "junk.pt"))


def test_run_record_files_and_resume_truncation(tmp_path):
    record = runtime.RunRecord(str(tmp_path), {"lr": 0.1})
    for epoch in (1, 2, 3):
        record.log({"epoch": epoch, "loss": 1.0 / epoch})
    record.summary({"epoch": 3})
    assert json.loads((tmp_path / "args.json").read_text()) == {"lr": 0.1}
    assert (tmp_path / "command.sh").read_text().startswith("#!/bin/sh\n")
    assert json.loads((tmp_path / "summary.json").read_text()) == {"epoch": 3}
    resumed = runtime.RunRecord(str(tmp_path), {"lr": 0.1}, resume_epoch=2)
    resumed.log({"epoch": 3, "loss": 0.5})
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and rows[-1]["loss"] == "0.5"


def test_sgd_is_fused_and_steps_as_torchs_sgd():
    """utils.sgd, every script's optimizer, is torch.optim.SGD's fused kernel on a CPU: the weights
    of the original's plain SGD, to rounding, after steps of momentum and weight decay."""
    torch.manual_seed(0)
    start, grads = torch.randn(1000), [torch.randn(1000) for _ in range(5)]
    weights = []
    for make in (utils.sgd, torch.optim.SGD):
        w = nn.Parameter(start.clone())
        optimizer = make([w], lr=0.1, momentum=0.9, weight_decay=5e-4)
        for g in grads:
            w.grad = g.clone()
            optimizer.step()
        weights.append(w.detach())
    assert optimizer.param_groups[0]["fused"] is None
    assert utils.sgd([nn.Parameter(start)], lr=0.1).param_groups[0]["fused"] is True
    assert torch.allclose(weights[0], weights[1], rtol=1e-6, atol=1e-7)
