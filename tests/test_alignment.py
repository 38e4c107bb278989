"""alignment/ and align.py: the groups found, permutation invariance, matching, REPAIR, the script.

The checks are independent of the code they test: a permutation must leave every zoo
model's outputs unchanged (and cover every hidden channel); the groups of a small residual
model are written out by hand; weight matching must undo a random permutation exactly, and
its assignment step must agree with brute force over all permutations, computed here from
the weights by hand; the activation statistics are numpy's correlations; REPAIR's
statistics are measured by hand.
"""
import csv
import itertools
import json
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import align
import alignment
import cli
import curves
import eval_curve
import models
import runtime
from conftest import random_checkpoint, user_error
from models.resnet import BasicBlock

BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


def zoo_model(name: str) -> tuple[nn.Module, torch.Tensor]:
    """A zoo model with random BatchNorm statistics (so that permuting them matters), in eval mode,
    and a batch of 2 small images."""
    size = 32 if name.startswith("VGG") else 8
    model = models.build_model(name, 10, in_channels=1, image_size=size)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model.eval(), torch.randn(2, 1, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_a_random_permutation_of_the_groups_leaves_every_zoo_model_unchanged(name):
    torch.manual_seed(0)
    model, x = zoo_model(name)
    symmetries = alignment.analyse(model, x[:1])
    groups = symmetries.groups
    # every output channel of every hidden layer is in some group (no symmetry left unfound)
    for layer in symmetries.layers:
        rows = model.get_submodule(layer).weight.shape[0]
        covered = torch.cat([a.index.reshape(-1) for g in groups for a in g.axes
                             if (a.key, a.dim) == (f"{layer}.weight", 0)] or [torch.zeros(0, dtype=torch.long)])
        expected = [] if layer in symmetries.output_layers else list(range(rows))
        assert sorted(covered.tolist()) == expected, layer
    with torch.no_grad():
        before = model(x)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        perms = {g.name: torch.roll(torch.arange(g.size), 1) for g in groups}  # moves every unit
        alignment.permute_model(model, groups, perms)
        after = model(x)
    assert any(not torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert torch.allclose(after, before, rtol=1e-4, atol=1e-5 * before.abs().max())


class TinyResidual(nn.Module):
    """A stem, an identity-shortcut block and an option-A block (1 zero channel on each side)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(2)
        self.block1 = BasicBlock(2, 2)
        self.block2 = BasicBlock(2, 4, stride=2, shortcut="A")
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.block2(self.block1(F.relu(self.bn1(self.conv1(x)))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def as_table(groups) -> dict:
    return {g.name: {(a.key, a.dim): a.index.tolist() for a in g.axes} for g in groups}


def bn(name, positions):
    return {(f"{name}.{t}", 0): [[p] for p in positions] for t in BN_TENSORS}


def test_the_groups_of_a_small_residual_model_are_the_ones_written_by_hand():
    groups = alignment.find_groups(TinyResidual(), torch.zeros(1, 1, 8, 8))
    rows = lambda *p: [[i] for i in p]  # noqa: E731
    expected = {
        # the residual stream: the stem, block1's sum, and the middle channels (1, 2) of block2's sum
        "conv1": {("conv1.weight", 0): rows(0, 1), **bn("bn1", (0, 1)), ("block1.conv1.weight", 1): rows(0, 1),
                  ("block1.conv2.weight", 0): rows(0, 1), **bn("block1.bn2", (0, 1)),
                  ("block2.conv1.weight", 1): rows(0, 1), ("block2.conv2.weight", 0): rows(1, 2),
                  **bn("block2.bn2", (1, 2)), ("fc.weight", 1): rows(1, 2)},
        "block1.conv1": {("block1.conv1.weight", 0): rows(0, 1), **bn("block1.bn1", (0, 1)),
                         ("block1.conv2.weight", 1): rows(0, 1)},
        "block2.conv1": {("block2.conv1.weight", 0): rows(0, 1, 2, 3), **bn("block2.bn1", (0, 1, 2, 3)),
                         ("block2.conv2.weight", 1): rows(0, 1, 2, 3)},
        # the channels the option-A shortcut pads with zeros: block2's own, free of the stream
        "block2.conv2": {("block2.conv2.weight", 0): rows(0, 3), **bn("block2.bn2", (0, 3)),
                         ("fc.weight", 1): rows(0, 3)},
    }
    assert as_table(groups) == expected
    assert [g.size for g in groups] == [2, 2, 4, 2]


def test_a_flatten_gives_each_channel_its_block_of_columns():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    groups = alignment.find_groups(net, torch.zeros(1, 1, 4, 4))
    assert as_table(groups) == {"0": {("0.weight", 0): [[0], [1]], ("0.bias", 0): [[0], [1]],
                                      ("4.weight", 1): [[0, 1, 2, 3], [4, 5, 6, 7]]}}
    assert [s.node for s in groups[0].sites] == ["_1"]  # the ReLU's output (fx names the node of layer "1" so)


class Flip(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv(x).flip(1).mean((2, 3)))


@pytest.mark.parametrize("net, says", [
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4), nn.Flatten(), nn.Linear(4 * 36, 2)), "'1' (GroupNorm)"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, groups=2)), "grouped convolution"),
    (Flip(), "method .flip"),
])
def test_an_operation_it_cannot_reason_about_is_a_clear_error(net, says):
    with pytest.raises(ValueError, match="alignment|grouped") as error:
        alignment.find_groups(net, torch.zeros(1, 1, 8, 8))
    assert says in str(error.value)


@pytest.mark.parametrize("name", ["MLP", "ResNet20", "PreResNet20", "cResNet20"])
def test_weight_matching_recovers_a_random_permutation_exactly(name):
    torch.manual_seed(1)
    model, x = zoo_model(name)
    groups = alignment.find_groups(model, x[:1])
    perms = alignment.random_permutation(groups, torch.Generator().manual_seed(2))
    state_a = model.state_dict()
    state_b = alignment.permute_state(state_a, groups, perms)
    params = dict(model.named_parameters())
    result = alignment.weight_matching(groups, {k: state_a[k] for k in params}, {k: state_b[k] for k in params})
    assert result.converged
    for g in groups:
        assert torch.equal(result.perms[g.name], torch.argsort(perms[g.name])), g.name
    back = alignment.permute_state(state_b, groups, result.perms)
    assert all(torch.equal(back[k], state_a[k]) for k in state_a)


def reference_weight_matching(a: nn.Sequential, b: nn.Sequential, seed: int) -> tuple[list, int]:
    """Git Re-Basin's weight_matching for an MLP, as its code does it with mlp_permutation_spec: P_i
    permutes Dense_i's rows and bias and Dense_{i+1}'s columns; every sweep a fresh random order,
    each cost recomputed in full, until no assignment gains more than 1e-12."""
    from scipy.optimize import linear_sum_assignment

    dense = lambda m: [(l.weight.detach().double().numpy(), l.bias.detach().double().numpy())  # noqa: E731
                       for l in m if isinstance(l, nn.Linear)]
    wa, wb = dense(a), dense(b)
    hidden = len(wa) - 1
    perm = [np.arange(len(wa[i][1])) for i in range(hidden)]
    rng = np.random.default_rng(seed)
    for sweep in range(100):
        progress = False
        for p in rng.permutation(hidden):
            w_in = wb[p][0][:, perm[p - 1]] if p > 0 else wb[p][0]
            w_out = wb[p + 1][0][perm[p + 1], :] if p + 1 < hidden else wb[p + 1][0]
            cost = wa[p][0] @ w_in.T + np.outer(wa[p][1], wb[p][1]) + wa[p + 1][0].T @ w_out
            new = linear_sum_assignment(cost, maximize=True)[1]
            rows = np.arange(len(new))
            progress = progress or cost[rows, new].sum() > cost[rows, perm[p]].sum() + 1e-12
            perm[p] = new
        if not progress:
            return perm, sweep + 1
    return perm, 100


def test_weight_matching_is_git_re_basins_descent_sweep_for_sweep():
    """Two random MLPs: the same permutations and the same number of sweeps as the original's rule,
    although ours skips groups whose neighbours did not change and updates costs by the moved units."""
    for seed in range(3):
        torch.manual_seed(seed)
        a, b = (nn.Sequential(nn.Linear(20, 48), nn.ReLU(), nn.Linear(48, 48), nn.ReLU(), nn.Linear(48, 48),
                              nn.ReLU(), nn.Linear(48, 48), nn.ReLU(), nn.Linear(48, 5)) for _ in range(2))
        groups = alignment.find_groups(a, torch.zeros(1, 20))
        result = alignment.weight_matching(groups, alignment.parameters(a), alignment.parameters(b), seed=seed)
        expected, sweeps = reference_weight_matching(a, b, seed)
        assert result.sweeps == sweeps and sweeps > 3
        assert [result.perms[g.name].tolist() for g in groups] == [p.tolist() for p in expected]


def brute_force(value, size):
    """The permutation of ``size`` units with the largest ``value(perm)``, by trying them all."""
    return max(itertools.permutations(range(size)), key=value)


def test_the_assignment_step_is_the_best_permutation_by_brute_force():
    """One group of 4 hidden units: weight matching's first sweep is one assignment, which must be
    the permutation maximising <A, P B> over all 24, written out by hand for each layer."""
    torch.manual_seed(3)
    for trial in range(3):
        a, b = (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)) for _ in range(2))
        groups = alignment.find_groups(a, torch.zeros(1, 3))
        pa, pb = alignment.parameters(a), alignment.parameters(b)

        def value(p):
            p = list(p)
            return float((pa["0.weight"] * pb["0.weight"][p]).sum() + (pa["0.bias"] * pb["0.bias"][p]).sum()
                         + (pa["2.weight"] * pb["2.weight"][:, p]).sum())

        found = alignment.weight_matching(groups, pa, pb, seed=trial).perms["0"].tolist()
        assert found == list(brute_force(value, 4))


def test_the_assignment_step_with_a_flatten_by_brute_force():
    """Four channels of a 2x2 map, flattened: each channel's 4 columns of the linear layer move together."""
    torch.manual_seed(4)
    make = lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),  # noqa: E731
                                 nn.Flatten(), nn.Linear(16, 3))
    a, b = make(), make()
    groups = alignment.find_groups(a, torch.zeros(1, 1, 6, 6))
    pa, pb = alignment.parameters(a), alignment.parameters(b)

    def value(p):
        p = list(p)
        fc_a, fc_b = pa["4.weight"].view(3, 4, 4), pb["4.weight"].view(3, 4, 4)[:, p]
        return float((pa["0.weight"] * pb["0.weight"][p]).sum() + (pa["0.bias"] * pb["0.bias"][p]).sum()
                     + (fc_a * fc_b).sum())

    assert alignment.weight_matching(groups, pa, pb).perms["0"].tolist() == list(brute_force(value, 4))


def test_activation_similarities_are_numpys_correlations_and_inner_products():
    torch.manual_seed(5)
    a, b = (nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2)) for _ in range(2))
    x = torch.randn(300, 5)
    groups = alignment.find_groups(a, x[:1])
    graphs = [torch.fx.symbolic_trace(m) for m in (a, b)]
    batches = [(x[:128], None), (x[128:], None)]
    with torch.no_grad():
        ha, hb = (torch.relu(m[0](x)).double().numpy() for m in (a, b))
    corr = alignment.activation_similarities(groups, *graphs, batches)["0"].numpy()
    assert np.allclose(corr, np.corrcoef(ha, hb, rowvar=False)[:3, 3:], atol=1e-6)
    inner = alignment.activation_similarities(groups, *graphs, batches, similarity="inner_product")["0"].numpy()
    assert np.allclose(inner, ha.T @ hb / len(x), atol=1e-6)


@pytest.mark.parametrize("name", ["MLP", "ResNet20"])
def test_activation_matching_recovers_a_random_permutation(name):
    torch.manual_seed(6)
    model, _ = zoo_model(name)
    x = torch.randn(256, 1, 8, 8)
    symmetries = alignment.analyse(model, x[:1])
    groups = symmetries.groups
    perms = alignment.random_permutation(groups, torch.Generator().manual_seed(7))
    permuted, _ = zoo_model(name)
    permuted.load_state_dict(alignment.permute_state(model.state_dict(), groups, perms))
    found = alignment.activation_matching(groups, symmetries.graph, torch.fx.symbolic_trace(permuted),
                                          [(x[:128], None), (x[128:], None)])
    for g in groups:
        assert torch.equal(found[g.name], torch.argsort(perms[g.name])), g.name


# --------------------------------------------------------------------------- REPAIR

def mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))


def test_repair_rescales_each_hidden_channel_to_the_interpolated_statistics():
    a, b = mlp(8), mlp(9)
    x = torch.randn(4000, 6)
    loader = [(x, None)]  # one batch: its statistics are the data's, so the result is exact
    layers = alignment.repair_layers(alignment.analyse(a, x[:1]))
    assert layers == ["0", "2"]  # the classifier is left alone
    stats_a, stats_b = (alignment.channel_statistics(m, layers, loader) for m in (a, b))
    mid = mlp(0)
    mid.load_state_dict({k: 0.7 * a.state_dict()[k] + 0.3 * b.state_dict()[k] for k in a.state_dict()})
    alignment.repair(mid, alignment.goal_statistics(stats_a, stats_b, 0.3), loader)
    with torch.no_grad():  # by hand: the pre-activations of the two endpoints and of the repaired network
        def pre(m):
            h1 = m[0](x)
            return h1, m[2](torch.relu(h1))
        for h_mid, h_a, h_b in zip(pre(mid), pre(a), pre(b)):
            goal_mean = 0.7 * h_a.mean(0) + 0.3 * h_b.mean(0)
            goal_std = 0.7 * h_a.std(0) + 0.3 * h_b.std(0)
            assert torch.allclose(h_mid.mean(0), goal_mean, atol=1e-4)
            assert torch.allclose(h_mid.std(0), goal_std, rtol=1e-3)


def test_repair_at_an_endpoint_gives_the_endpoint_and_refuses_batchnorm():
    a, b = mlp(10), mlp(11)
    x = torch.randn(2000, 6)
    layers = ["0", "2"]
    stats = [alignment.channel_statistics(m, layers, [(x, None)]) for m in (a, b)]
    copy = mlp(0)
    copy.load_state_dict(a.state_dict())
    alignment.repair(copy, alignment.goal_statistics(*stats, 0.0), [(x, None)])
    for k, v in a.state_dict().items():
        assert torch.allclose(copy.state_dict()[k], v, atol=1e-4), k
    with pytest.raises(ValueError, match="BatchNorm"):
        alignment.channel_statistics(nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4)), ["0"], [(x, None)])


# --------------------------------------------------------------------------- align.py

@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    return {name: tuple(random_checkpoint(folder / f"{name}-{seed}.pt", name, seed) for seed in (1, 2))
            for name in ("ResNet20", "MLP")}


def test_align_writes_b_permuted_as_a_model_checkpoint_that_eval_curve_takes(tmp_path, pair):
    ckpt_a, ckpt_b = pair["ResNet20"]
    out = tmp_path / "align"
    cli.run(align.main, [f"--ckpt_a={ckpt_a}", f"--ckpt_b={ckpt_b}", f"--dir={out}", "--method=weights"])
    assert {"aligned.pt", "summary.json", "metrics.csv", "args.json", "command.sh"} <= set(os.listdir(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["distance_after"] < summary["distance_before"] and summary["converged"]
    b, aligned = runtime.load_checkpoint(ckpt_b), runtime.load_checkpoint(str(out / "aligned.pt"), kind="model")
    for key in ("model", "model_kwargs", "num_classes", "dataset", "transform", "use_test", "label_noise", "args"):
        assert aligned[key] == b[key], key
    groups = summary["groups"]
    assert all(sorted(g["permutation"]) == list(range(g["size"])) for g in groups.values())
    assert groups["conv1"]["layers"][0] == "conv1"
    # the same function as B, with other weights
    x = torch.randn(4, 1, 8, 8)
    net_b, net_aligned = models.model_from_checkpoint(b).eval(), models.model_from_checkpoint(aligned).eval()
    with torch.no_grad():
        assert torch.allclose(net_aligned(x), net_b(x), rtol=1e-4, atol=1e-4)
    assert not torch.equal(aligned["model_state"]["layer1.0.conv1.weight"], b["model_state"]["layer1.0.conv1.weight"])
    # the straight segment to it: its length is the distance after alignment
    segment = tmp_path / "segment"
    cli.run(eval_curve.main, [f"--dir={segment}", f"--init_start={ckpt_a}", f"--init_end={out / 'aligned.pt'}",
                              "--num_points=2", "--batch_size=512"])
    length = json.loads((segment / "summary.json").read_text())["length"]
    assert length == pytest.approx(summary["distance_after"], rel=1e-4)


def test_align_by_activations_on_digits(tmp_path, pair):
    ckpt_a, ckpt_b = pair["MLP"]
    out = tmp_path / "align"
    cli.run(align.main, [f"--ckpt_a={ckpt_a}", f"--ckpt_b={ckpt_b}", f"--dir={out}", "--method=activations",
                         "--num_images=300", "--batch_size=128"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_images"] == 300 and summary["similarity"] == "correlation"
    assert summary["distance_after"] < summary["distance_before"]
    assert set(summary["groups"]) == {"net.1", "net.3"}


def test_align_bad_input_is_one_error_line_and_writes_nothing(tmp_path, capsys, pair):
    (a, _), (mlp_b, _) = pair["ResNet20"], pair["MLP"]
    curve = tmp_path / "curve.pt"
    ckpt = torch.load(a, weights_only=True)
    ckpt.update(kind="curve", curve="Bezier", num_bends=3, fix_start=True, fix_end=True)
    torch.save(ckpt, curve)
    out = tmp_path / "out"
    cases = [(mlp_b, "one architecture"), (curve, "'curve' checkpoint"), (tmp_path / "missing.pt", "does not exist")]
    for b, says in cases:
        assert says in user_error(capsys, align.main, f"--ckpt_a={a}", f"--ckpt_b={b}", f"--dir={out}")
        assert not out.exists()


def test_eval_curve_repair_resets_the_hidden_statistics_along_the_segment(tmp_path, pair, capsys):
    """eval_curve.py --repair: at the ends the networks themselves; at t = 0.5 each hidden unit's
    pre-activation has the mean and std interpolated from the endpoints' (computed here with numpy
    on the same plain training images); refused where it does not apply."""
    import data

    ckpt_a, ckpt_b = pair["MLP"]
    plain, repaired = tmp_path / "plain", tmp_path / "repaired"
    common = [f"--init_start={ckpt_a}", f"--init_end={ckpt_b}", "--num_points=3", "--batch_size=512", "--use_test"]
    cli.run(eval_curve.main, [f"--dir={plain}", *common])
    cli.run(eval_curve.main, [f"--dir={repaired}", *common, "--repair"])
    rows = {name: list(csv.DictReader(open(folder / "curve.csv"))) for name, folder in
            (("plain", plain), ("repaired", repaired))}
    for k in (0, 2):  # t = 0 and 1: REPAIR leaves an endpoint as it is
        assert float(rows["repaired"][k]["te_nll"]) == pytest.approx(float(rows["plain"][k]["te_nll"]), rel=1e-4)
    # the repaired midpoint's first hidden layer, against numpy's statistics of the endpoints
    dataset = data.load_dataset("DIGITS", use_test=True)
    x = data.make_loaders(dataset, 2000, "VGG")["train_eval"]
    images = next(iter(x))[0]
    nets = [models.model_from_checkpoint(runtime.load_checkpoint(p)).eval() for p in (ckpt_a, ckpt_b)]
    with torch.no_grad():
        pre = [net.net[1](net.net[0](images)).double().numpy() for net in nets]
    goal_mean = 0.5 * pre[0].mean(0) + 0.5 * pre[1].mean(0)
    goal_std = 0.5 * pre[0].std(0, ddof=1) + 0.5 * pre[1].std(0, ddof=1)
    curve = curves.CurveModel(models.model_from_checkpoint(runtime.load_checkpoint(ckpt_a)), "PolyChain", 2, True, True)
    curve.load_bend(0, runtime.load_checkpoint(ckpt_a)["model_state"])
    curve.load_bend(1, runtime.load_checkpoint(ckpt_b)["model_state"])
    middle = eval_curve.Repaired([runtime.load_checkpoint(p) for p in (ckpt_a, ckpt_b)], x, "cpu").at(curve, 0.5)
    with torch.no_grad():
        got = middle.net[1](middle.net[0](images)).double().numpy()
    assert np.allclose(got.mean(0), goal_mean, atol=1e-3)
    assert np.allclose(np.sqrt(got.var(0, ddof=1) + 1e-5), np.sqrt(goal_std ** 2 + 1e-5), rtol=1e-3, atol=1e-3)
    # where it does not apply: one error line, nothing written
    res = pair["ResNet20"]
    out = tmp_path / "refused"
    assert "BatchNorm" in user_error(capsys, eval_curve.main, f"--dir={out}", f"--init_start={res[0]}",
                                     f"--init_end={res[1]}", "--repair")
    assert "0 to 1" in user_error(capsys, eval_curve.main, f"--dir={out}", *common, "--repair", "--t_min=-1",
                                  "--num_points=5")
    assert not out.exists()
