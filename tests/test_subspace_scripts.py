"""train_subspace.py and simplex.py end to end on DIGITS: the files they write, resumption to the
same weights (stopped at chosen steps in-process, and SIGKILLed mid-growth), bad input, two gloo
processes against one; utils.train_epoch's several points a step; --label_noise in the scripts."""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import cli
import curves
import runtime
import simplex
import train_subspace
import utils
from conftest import ROOT, run_script, user_error
from test_distributed import assert_close_weights, torchrun

DIGITS = ["--dataset=DIGITS", "--use_test"]
LINE = ["--model=MLP", *DIGITS, "--epochs=3", "--warmup_epochs=1", "--lr=0.05", "--num_points=5", "--eval_freq=2"]
SPRO = ["--num_vertices=3", "--epochs_per_vertex=2", "--num_samples=2", "--num_test_samples=3", "--lr=0.02"]


@pytest.fixture(autouse=True)
def signals_restored():
    """In-process runs install SIGTERM/SIGUSR1 handlers (a stopped run keeps them): put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def main(script, *argv) -> None:
    cli.run(script.main, [str(a) for a in argv])


def weights(path) -> dict:
    return torch.load(path, weights_only=True)["model_state"]


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def starts(tmp_path_factory) -> list[str]:
    """Two MLPs trained 2 epochs on DIGITS (seeds 1, 2): the simplexes' vertex 0."""
    folder = tmp_path_factory.mktemp("starts")
    for seed in (1, 2):
        main(__import__("train"), *DIGITS, "--model=MLP", "--epochs=2", "--lr=0.05", f"--seed={seed}",
             f"--dir={folder / str(seed)}")
    return [str(folder / str(seed) / "checkpoint-2.pt") for seed in (1, 2)]


@pytest.fixture(scope="module")
def line_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("line") / "run"
    main(train_subspace, *LINE, f"--dir={folder}")
    return folder


@pytest.fixture(scope="module")
def espro_run(starts, tmp_path_factory):
    folder = tmp_path_factory.mktemp("espro") / "run"
    main(simplex, *SPRO, f"--ckpt={starts[0]}", f"--ckpt={starts[1]}", f"--dir={folder}")
    return folder


# --------------------------------------------------------------------------- the files

def test_a_line_writes_its_points_picture_and_summary(line_run):
    summary = json.loads((line_run / "summary.json").read_text())
    assert len(summary["endpoint_acc"]) == 2 and summary["shape"] == "line"
    for key in ("midpoint_acc", "midpoint_nll", "midpoint_ece", "endpoint_ensemble_acc", "endpoint_ensemble_nll"):
        assert isinstance(summary[key], float), key
    with open(line_run / "subspace.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["alpha"]) for r in rows] == [0.0, 0.25, 0.5, 0.75, 1.0]
    middle = rows[2]
    assert float(middle["test_acc"]) == summary["midpoint_acc"] and middle["coefficients"] == "0.5 0.5"
    assert rows[0]["pair_acc"] == rows[-1]["pair_acc"] and float(rows[0]["pair_acc"]) == summary["endpoint_ensemble_acc"]
    assert (line_run / "subspace.png").stat().st_size > 0
    ckpt = runtime.load_checkpoint(str(line_run / "checkpoint-3.pt"), kind="subspace")
    assert (ckpt["shape"], ckpt["num_vertices"], ckpt["fixed"], ckpt["label_noise"]) == ("PolyChain", 2, [], 0.0)
    with open(line_run / "metrics.csv") as f:  # the midpoint after epochs 1 and 3 (--eval_freq=2, and the last)
        assert [bool(r["test_acc"]) for r in csv.DictReader(f)] == [True, False, True]
    # the learning-subspaces schedule: 1 warm-up epoch, then cosine over the other 2
    assert [utils.cosine_learning_rate(0.05, e, 3, 1) for e in range(3)] == [0.05, 0.05, 0.025]


def test_a_lines_ensembles_are_learning_subspaces(line_run):
    """The endpoints' ensemble and each alpha's pair with 1 - alpha: the argmax of the summed logits, NLL
    and ECE (20 bins) of softmax(mean logits), learning-subspaces' rule (eval_one_dim_subspaces.py);
    the mean of probabilities beside it. An MLP: no BatchNorm to recompute at the points."""
    import data
    from test_subspace_fidelity import original_ece, original_logit_ensemble

    model = curves.subspace_from_checkpoint(runtime.load_checkpoint(str(line_run / "checkpoint-3.pt"), kind="subspace"))
    loader = data.make_loaders(data.load_dataset("DIGITS", use_test=True), batch_size=32, transform="VGG")["test"]
    labels = loader.labels.numpy()

    def logits(alpha):
        net = model.eval().at(alpha)
        with torch.no_grad():
            return torch.cat([net(x) for x, _ in loader]).double().numpy()

    ends = [logits(0.0), logits(1.0)]
    summary = json.loads((line_run / "summary.json").read_text())
    expected = original_logit_ensemble(ends, labels)
    assert (summary["endpoint_ensemble_acc"], summary["endpoint_ensemble_nll"], summary["endpoint_ensemble_ece"]) == \
        pytest.approx((expected["accuracy"], expected["nll"], expected["ece"]), abs=1e-5)
    mean = np.mean([torch.softmax(torch.from_numpy(e), 1).numpy() for e in ends], 0)
    assert summary["endpoint_ensemble_prob_acc"] == pytest.approx(100.0 * np.mean(mean.argmax(1) == labels))
    assert summary["endpoint_ensemble_prob_nll"] == pytest.approx(-np.log(mean[np.arange(len(labels)), labels]).mean(),
                                                                  abs=1e-5)
    with open(line_run / "subspace.csv") as f:
        row = {float(r["alpha"]): r for r in csv.DictReader(f)}[0.25]
    pair = original_logit_ensemble([logits(0.25), logits(0.75)], labels)
    assert (float(row["pair_acc"]), float(row["pair_nll"]), float(row["pair_ece"])) == \
        pytest.approx((pair["accuracy"], pair["nll"], pair["ece"]), abs=1e-5)
    assert summary["midpoint_ece"] == pytest.approx(
        original_ece(torch.softmax(torch.from_numpy(logits(0.5)), 1).numpy(), labels, 20), abs=1e-6)


def test_a_simplex_from_scratch_has_its_centroid_vertices_and_edges(tmp_path):
    folder = tmp_path / "run"
    main(train_subspace, "--model=ResNet20", *DIGITS, "--shape=simplex", "--num_vertices=3", "--epochs=1",
         "--warmup_epochs=0", "--layerwise", "--batch_size=128", f"--dir={folder}")
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["endpoint_acc"]) == 3
    with open(folder / "subspace.csv") as f:
        rows = {r["point"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["centroid", "vertex 0", "vertex 1", "vertex 2", "edge 0-1", "edge 0-2", "edge 1-2"]
    assert float(rows["centroid"]["test_acc"]) == summary["midpoint_acc"]
    assert [float(rows[f"vertex {k}"]["test_acc"]) for k in range(3)] == summary["endpoint_acc"]
    assert rows["edge 0-2"]["coefficients"] == "0.5 0 0.5" and rows["edge 0-2"]["pair_acc"]


def test_espro_writes_its_simplexes_picture_and_summary(espro_run, starts):
    summary = json.loads((espro_run / "summary.json").read_text())
    assert summary["num_simplexes"] == 2 and len(summary["volume"]) == 2 and all(v > 0 for v in summary["volume"])
    assert [len(v) for v in summary["vertex_acc"]] == [3, 3]
    assert len(summary["ensemble_acc_by_samples"]) == 3 and summary["ensemble_acc"] == summary["ensemble_acc_by_samples"][-1]
    for key in ("ensemble_acc", "ensemble_nll", "ensemble_ece", "start_ensemble_acc"):
        assert isinstance(summary[key], float), key
    # vertex 0 of each simplex is its trained network, unchanged
    for k, start in enumerate(starts):
        grown = runtime.load_checkpoint(str(espro_run / f"simplex-{k}.pt"), kind="subspace")
        assert (grown["num_vertices"], grown["fixed"]) == (3, [0, 1])
        for name, tensor in weights(start).items():
            assert torch.equal(grown["model_state"][f"vertices.0.{name}"], tensor), name
    with open(espro_run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["simplex"], r["vertex"], r["vertex_epoch"]) for r in rows] == \
        [(s, v, e) for s in "01" for v in "12" for e in "12"]
    assert [float(r["lr"]) for r in rows[:2]] == [0.02, 0.01]  # cosine over each vertex's 2 epochs
    # every row: the lambda in force, the original's max(LMBD / log(V0^2 + 1e-4), 1e-8) with the floor
    # scaled to --volume_reg (default 1e-6: the original's), V0 of a random simplex of vertex + 1 networks
    for r in rows:
        log_v0_sq = float(r["log_v0_sq"])
        assert float(r["lambda"]) == pytest.approx(max(1e-6 / math.log(math.exp(log_v0_sq) + 1e-4), 1e-8), rel=1e-9)
    assert len({(r["vertex"], r["log_v0_sq"]) for r in rows}) == 2
    assert float(rows[2]["log_v0_sq"]) > float(rows[0]["log_v0_sq"])  # vertex 2: a simplex of 3
    assert (espro_run / "ensemble.png").stat().st_size > 0


# --------------------------------------------------------------------------- resumption

def stop_at(monkeypatch, calls: int) -> None:
    """A stop signal seen at the ``calls``-th look (after each step, and after each epoch)."""
    count = [0]

    def stop_requested(self) -> bool:
        count[0] += 1
        return count[0] == calls
    monkeypatch.setattr(runtime.Run, "stop_requested", stop_requested)


# 45 steps an epoch, 44 looks within it and one at its end. Simplex: vertex 1 epochs 1-2, vertex 2 epochs 3-4.
@pytest.mark.parametrize("calls", [30, 45, 90, 90 + 12, 135 + 20, 180, 180 + 7])
def test_simplex_stopped_anywhere_continues_to_the_same_weights(calls, espro_run, starts, tmp_path, monkeypatch):
    """Within a vertex's first epoch, at a vertex's end, within the second vertex, at the second
    simplex's first steps: the same command continues to the uninterrupted run's weights and figures."""
    folder = tmp_path / "run"
    command = [*SPRO, f"--ckpt={starts[0]}", f"--ckpt={starts[1]}", f"--dir={folder}"]
    stop_at(monkeypatch, calls)
    with pytest.raises(SystemExit) as stopped:
        main(simplex, *command)
    assert stopped.value.code == runtime.EXIT_REQUEUE
    monkeypatch.undo()
    main(simplex, *command)
    for k in range(2):
        assert_same(weights(folder / f"simplex-{k}.pt"), weights(espro_run / f"simplex-{k}.pt"))
    assert json.loads((folder / "summary.json").read_text()) == json.loads((espro_run / "summary.json").read_text())


def test_line_stopped_within_an_epoch_continues_to_the_same_weights(line_run, tmp_path, monkeypatch):
    folder = tmp_path / "run"
    stop_at(monkeypatch, 60)
    with pytest.raises(SystemExit):
        main(train_subspace, *LINE, f"--dir={folder}")
    monkeypatch.undo()
    main(train_subspace, *LINE, f"--dir={folder}")
    assert_same(weights(folder / "checkpoint-3.pt"), weights(line_run / "checkpoint-3.pt"))
    assert (folder / "subspace.csv").read_text() == (line_run / "subspace.csv").read_text()


def test_simplex_killed_mid_growth_and_started_again(starts, tmp_path):
    """SIGKILL while the second vertex trains (no chance to write anything): the same command
    again ends with the weights of a run never killed."""
    command = [os.path.join(ROOT, "simplex.py"), *SPRO, f"--ckpt={starts[0]}", "--epochs_per_vertex=3"]
    whole = tmp_path / "whole"
    main(simplex, *command[1:], f"--dir={whole}")  # in-process: the same arithmetic as a subprocess's
    folder = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *command, f"--dir={folder}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=ROOT))
    deadline = time.time() + 120
    while not _rows(folder / "metrics.csv") >= 4:  # vertex 1's 3 epochs and one of vertex 2
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert not (folder / "simplex-0.pt").exists()
    run_script(*command[:1], *command[1:], f"--dir={folder}")
    assert_same(weights(folder / "simplex-0.pt"), weights(whole / "simplex-0.pt"))
    assert json.loads((folder / "summary.json").read_text()) == json.loads((whole / "summary.json").read_text())


def _rows(path) -> int:
    try:
        return len(path.read_text().splitlines()) - 1
    except OSError:
        return 0


def test_two_processes_learn_the_line_one_process_learns(tmp_path):
    """torchrun, 2 gloo processes, a BatchNorm-free model: the same alpha on both in every step."""
    common = ["--model=MLP", *DIGITS, "--epochs=2", "--warmup_epochs=1", "--lr=0.05", "--num_points=2",
              "--batch_size=32"]
    main(train_subspace, *common, f"--dir={tmp_path / 'one'}")
    torchrun("train_subspace.py", *common, f"--dir={tmp_path / 'two'}")
    assert_close_weights(tmp_path / "one" / "checkpoint-2.pt", tmp_path / "two" / "checkpoint-2.pt")
    one, two = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("one", "two"))
    assert two["midpoint_acc"] == pytest.approx(one["midpoint_acc"], abs=0.3)


# --------------------------------------------------------------------------- bad input

def test_bad_input_is_one_error_and_writes_nothing(starts, tmp_path, capsys):
    folder = tmp_path / "never"
    other = torch.load(starts[1], weights_only=True)  # a network of another model, for the same data
    other.update(model="ConvFC", model_state=__import__("models").build_model("ConvFC", 10, 1, 8).state_dict())
    runtime.save_checkpoint(str(tmp_path / "convfc.pt"), other)
    cases = [
        (simplex, [f"--ckpt={starts[0]}", "--num_vertices=1"], "at least 2 vertices"),
        (simplex, [f"--ckpt={starts[0]}", f"--ckpt={tmp_path / 'convfc.pt'}"], "differ in model"),
        (simplex, [f"--ckpt={starts[0]}", "--model=ConvFC"], "contradicts"),
        (simplex, [f"--ckpt={starts[0]}", "--label_noise=0.2"], "contradicts"),
        (simplex, [f"--ckpt={starts[0]}", "--no_use_test"], "contradicts"),
        (simplex, [f"--ckpt={tmp_path / 'missing.pt'}"], "does not exist"),
        (simplex, ["--num_vertices=3"], "--ckpt"),
        (train_subspace, ["--model=MLP", *DIGITS, "--shape=line", "--num_vertices=3"], "a line has 2 vertices"),
        (train_subspace, ["--model=MLP", *DIGITS, "--epochs=3", "--warmup_epochs=3"], "warmup"),
        (train_subspace, [*DIGITS, "--shape=curve"], "--model is required"),
        (train_subspace, ["--model=MLP", *DIGITS, "--label_noise=1.5"], "fraction"),
        (train_subspace, [f"--resume={starts[0]}"], "'model' checkpoint"),
    ]
    for script, argv, message in cases:
        assert message in user_error(capsys, script.main, *argv, f"--dir={folder}"), (argv, message)
        assert not folder.exists()


def test_a_subspace_checkpoint_is_not_a_start(espro_run, capsys, tmp_path):
    error = user_error(capsys, simplex.main, f"--ckpt={espro_run / 'simplex-0.pt'}", f"--dir={tmp_path / 'x'}")
    assert "'subspace' checkpoint" in error


# --------------------------------------------------------------------------- several points a step

def test_samples_average_the_points_losses_with_a_backward_each():
    """Three points a step: the step of the mean of their NLLs (plus the regulariser once), as one
    graph would give it; the figures are means over the points."""
    import curves
    from models import build_model

    def make():
        torch.manual_seed(0)
        model = curves.SubspaceModel(build_model("MLP", 10, 1, 8), "simplex", 3, seed=5)
        model.init_random(lambda: build_model("MLP", 10, 1, 8))
        return model.double()

    x, y = torch.randn(8, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (8,))
    ours, ref = make(), make()
    opt = torch.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    reg = ours.regularizer(lam=0.01)
    figures = utils.train_epoch(ours, [(x, y)], opt, regularizer=reg, samples=3)
    # float32 losses, as train_epoch computes them (its logits.float()), then float64 again
    nlls = [torch.nn.functional.cross_entropy(ref.train()(x).float(), y).double() for _ in range(3)]
    loss = sum(nlls) / 3 - 0.01 * ref.log_volume()
    loss.backward()
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    ref_opt.step()
    assert not torch.allclose(ours.vertices_matrix(), make().vertices_matrix())  # it moved
    assert torch.allclose(ours.vertices_matrix(), ref.vertices_matrix(), rtol=0, atol=1e-15)
    assert figures["nll"] == pytest.approx(float(sum(nlls).detach()) / 3)
    assert torch.equal(ours.sampler_state(), ref.sampler_state())  # the same three points were drawn


def test_the_originals_summed_loss_is_the_mean_at_k_times_the_rate():
    """loss-surface-simplexes trains on the sum of its k points' losses (`acc_loss.div(nsample)`
    discards its result); SGD with momentum on the sum at (lr, wd, lambda) takes the steps of the
    mean at (k lr, wd / k, lambda / k): the settings scripts/simplexes_table.sh passes."""
    k, lr, wd, lam = 5, 0.01, 5e-4, 1e-6
    torch.manual_seed(0)
    w0, data = torch.randn(20, dtype=torch.float64), [torch.randn(k, 20, dtype=torch.float64) for _ in range(4)]

    def train(scale, lr, wd, lam):
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.SGD([w], lr=lr, momentum=0.9, weight_decay=wd)
        for batch in data:
            losses = ((batch - w) ** 2).sum(1)  # one loss per point
            opt.zero_grad()
            (scale * losses.mean() - lam * torch.log((w * w).sum())).backward()
            opt.step()
        return w.detach()

    torch.testing.assert_close(train(k, lr, wd, lam), train(1, k * lr, wd / k, lam / k), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- label noise in the scripts

def test_label_noise_is_recorded_taken_and_checked(tmp_path, capsys):
    import fge
    import train

    main(train, *DIGITS, "--model=MLP", "--epochs=1", "--label_noise=0.4", f"--dir={tmp_path / 'noisy'}")
    ckpt = tmp_path / "noisy" / "checkpoint-1.pt"
    stored = torch.load(ckpt, weights_only=True)
    assert (stored["label_noise"], stored["label_noise_seed"]) == (0.4, 0)
    main(fge, f"--ckpt={ckpt}", "--epochs=2", "--cycle=2", f"--dir={tmp_path / 'fge'}")
    assert json.loads((tmp_path / "fge" / "args.json").read_text())["label_noise"] == 0.4
    capsys.readouterr()  # the runs' progress bars
    assert "contradicts" in user_error(capsys, fge.main, f"--ckpt={ckpt}", "--label_noise=0.2", "--epochs=2",
                                       "--cycle=2", f"--dir={tmp_path / 'other'}")
    assert "contradicts" in user_error(capsys, train.main, f"--resume={ckpt}", "--label_noise=0", "--epochs=2")
