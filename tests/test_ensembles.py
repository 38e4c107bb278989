"""ensembles: FGE / SSE / SWA schedules, snapshot and averaging epochs, the running ensemble and the
SWA average with its BatchNorm update, each against an independent computation."""
import numpy as np
import pytest
import torch
import torch.nn as nn

import ensembles
import utils


# --------------------------------------------------------------------------- FGE

def triangle(iteration: int, per_epoch: int, cycle: int, lr_1: float, lr_2: float) -> float:
    """FGE's rate from the global iteration count: a triangle wave of period cycle * per_epoch."""
    period = cycle * per_epoch
    return float(np.interp((iteration % period) / period, [0.0, 0.5, 1.0], [lr_1, lr_2, lr_1]))


@pytest.mark.parametrize("cycle", [2, 4, 6])
def test_fge_rate_is_a_triangle_wave_over_iterations(cycle):
    lr_1, lr_2, per_epoch = 0.05, 0.0005, 7
    for epoch in range(3 * cycle):
        for i in range(per_epoch):
            assert ensembles.fge_learning_rate(epoch, i / per_epoch, cycle, lr_1, lr_2) == \
                pytest.approx(triangle(epoch * per_epoch + i, per_epoch, cycle, lr_1, lr_2), abs=1e-12)


def test_fge_rate_at_known_iterations():
    lr_1, lr_2, cycle = 0.05, 0.0005, 4
    rate = lambda epoch, fraction: ensembles.fge_learning_rate(epoch, fraction, cycle, lr_1, lr_2)  # noqa: E731
    assert rate(0, 0.0) == pytest.approx(lr_1)  # a cycle starts at the top
    assert rate(1, 1.0) == pytest.approx(lr_2)  # the end of its 2nd epoch is the bottom
    assert rate(2, 0.0) == pytest.approx(lr_2)
    assert rate(1, 0.5) == pytest.approx(lr_1 + 0.75 * (lr_2 - lr_1))  # t = 3/8, 3/4 of the way down
    assert rate(3, 0.5) == pytest.approx(lr_2 + 0.75 * (lr_1 - lr_2))  # t = 7/8, 3/4 of the way up
    assert rate(4, 0.0) == pytest.approx(lr_1)  # the next cycle restarts at the top
    assert rate(5, 0.5) == pytest.approx(rate(1, 0.5))


@pytest.mark.parametrize("cycle,epochs", [(2, 40), (4, 12), (6, 20), (8, 3)])
def test_fge_snapshots_are_taken_at_the_lowest_rate(cycle, epochs):
    # Independently: epoch e (from 1) ends after e epochs, at the bottom of the triangle
    # when e is half a cycle past a multiple of the cycle.
    expected = [e for e in range(1, epochs + 1) if e % cycle == cycle // 2]
    assert ensembles.snapshot_epochs(epochs, cycle) == expected
    for e in expected:
        assert ensembles.fge_learning_rate(e - 1, 1.0, cycle, 0.05, 0.0005) == pytest.approx(0.0005)
    if (cycle, epochs) == (2, 40):  # the paper's command: 20 snapshots, one every 2 epochs
        assert expected == list(range(1, 40, 2))


# --------------------------------------------------------------------------- SSE

@pytest.mark.parametrize("cycle", [1, 3, 4])
def test_sse_rate_matches_cosine_annealing_with_warm_restarts(cycle):
    lr_1, per_epoch = 0.1, 5
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr_1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=cycle * per_epoch, eta_min=0)
    for epoch in range(3 * cycle):
        for i in range(per_epoch):
            expected = optimizer.param_groups[0]["lr"]
            assert ensembles.sse_learning_rate(epoch, i / per_epoch, cycle, lr_1) == pytest.approx(expected)
            optimizer.step()
            scheduler.step()


def test_sse_snapshots_at_the_end_of_each_cycle():
    assert ensembles.snapshot_epochs(12, 4, "cosine") == [4, 8, 12]
    assert ensembles.snapshot_epochs(3, 1, "cosine") == [1, 2, 3]
    assert ensembles.sse_learning_rate(3, 1.0, 4, 0.1) == pytest.approx(0.0, abs=1e-12)
    assert ensembles.sse_learning_rate(2, 0.0, 4, 0.1) == pytest.approx(0.05)


# --------------------------------------------------------------------------- SWA schedule

def test_swa_schedule_without_swa_is_the_papers_sgd_schedule():
    for epoch in range(50):
        assert ensembles.swa_learning_rate(epoch, 0.05, 50) == pytest.approx(
            utils.learning_rate_schedule(0.05, epoch, 50))


def test_swa_schedule_with_swa():
    lr_init, swa_lr, swa_start, epochs = 0.05, 0.01, 161, 300
    for epoch in range(epochs):  # constant, linear between 50% and 90% of swa_start, constant
        expected = np.interp(epoch / swa_start, [0.5, 0.9], [lr_init, swa_lr])
        assert ensembles.swa_learning_rate(epoch, lr_init, epochs, swa_start, swa_lr) == pytest.approx(expected)
    assert ensembles.swa_learning_rate(160, lr_init, epochs, swa_start, swa_lr) == pytest.approx(swa_lr)


def test_epochs_that_join_the_average():
    assert [e for e in range(1, 11) if ensembles.joins_average(e, 3, 2)] == [3, 5, 7, 9]
    assert [e for e in range(1, 6) if ensembles.joins_average(e, 1, 1)] == [1, 2, 3, 4, 5]
    assert not any(ensembles.joins_average(e, 161, 1) for e in range(1, 161))


# --------------------------------------------------------------------------- averaging

def small_bn_net() -> nn.Module:
    return nn.Sequential(nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


def test_the_average_is_the_arithmetic_mean_of_the_collected_weights():
    torch.manual_seed(0)
    model = small_bn_net()
    average = ensembles.averaged_model(model)
    collected = []
    for _ in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        average.update_parameters(model)
        collected.append({k: v.clone() for k, v in model.named_parameters()})
    assert int(average.n_averaged) == 4
    for name, p in average.module.named_parameters():
        assert torch.allclose(p, torch.stack([c[name] for c in collected]).mean(0), atol=1e-6), name

    # Saved and restored (as swa.py checkpoints do), the average continues the same way.
    restored = ensembles.averaged_model(small_bn_net())
    ensembles.load_average(restored, average.module.state_dict(), int(average.n_averaged))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update_parameters(model)
    restored.update_parameters(model)
    assert int(restored.n_averaged) == 5
    for a, b in zip(average.module.parameters(), restored.module.parameters()):
        assert torch.equal(a, b)


def test_the_batchnorm_update_gives_the_average_the_statistics_of_the_data():
    torch.manual_seed(0)
    model = small_bn_net()
    average = ensembles.averaged_model(model)
    average.update_parameters(model)
    before = average.module[0].running_mean.clone()
    x = 3.0 + 2.0 * torch.randn(13, 2, 4, 4)
    batches = [(x[:5], None), (x[5:10], None), (x[10:], None)]  # a short last batch
    utils.update_bn(average.module, batches)
    stats = average.module[0]
    assert not torch.allclose(stats.running_mean, before)
    # The BN layer sees the data themselves: its mean is the mean of all 13 images.
    assert torch.allclose(stats.running_mean, x.mean(dim=(0, 2, 3)), atol=1e-5)
    # Variance: the batch-size weighted mean of each batch's unbiased variance.
    per_batch = [b.transpose(0, 1).reshape(2, -1).var(dim=1, unbiased=True) for b, _ in batches]
    expected = sum(len(b) * v for (b, _), v in zip(batches, per_batch)) / len(x)
    assert torch.allclose(stats.running_var, expected, atol=1e-5)
    assert torch.equal(model[0].running_mean, torch.zeros(2))  # the SGD model keeps its own
    assert ensembles.plain_copy(average).state_dict().keys() == model.state_dict().keys()


# --------------------------------------------------------------------------- the ensemble

def test_a_one_model_ensemble_is_that_model():
    rng = np.random.RandomState(0)
    probs = rng.dirichlet(np.ones(5), size=40)
    labels = rng.randint(0, 5, size=40)
    ensemble = ensembles.ProbabilityEnsemble()
    ensemble.add(probs)
    assert np.allclose(ensemble.probs, probs)
    assert ensemble.metrics(labels) == pytest.approx(utils.prediction_metrics(probs, labels))


def test_the_ensemble_averages_probabilities():
    # Each member is right on a different half of the examples, confidently wrong elsewhere
    # with a weaker wrong vote: the mean of probabilities gets all four right.
    labels = np.array([0, 0, 1, 1])
    first = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    second = np.array([[0.4, 0.6], [0.4, 0.6], [0.1, 0.9], [0.1, 0.9]])
    ensemble = ensembles.ProbabilityEnsemble()
    for member in (first, second):
        ensemble.add(member)
    assert ensemble.size == 2
    assert np.allclose(ensemble.probs, (first + second) / 2)
    metrics = ensemble.metrics(labels)
    assert metrics["accuracy"] == 100.0
    assert metrics["nll"] == pytest.approx(-np.log(0.65))
    with pytest.raises(ValueError):
        _ = ensembles.ProbabilityEnsemble().probs

