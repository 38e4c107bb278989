"""fge.py, swa.py and eval_ensemble.py end to end on tiny data, and their bad input.

Most runs call the scripts' ``main`` in this process (an MLP on DIGITS takes well
under a second an epoch); ``cli.run`` there gives the same exit status and
``error:`` line as the command line, which a few subprocess runs confirm.
"""
import csv
import json
import os

import pytest
import torch

import eval_ensemble
import fge
import models
import swa
import train
from conftest import assert_user_error, run_script, user_error, write_cifar

DIGITS = ["--dataset=DIGITS", "--use_test", "--batch_size=128"]  # 12 steps an epoch


def summary(folder) -> dict:
    return json.loads((folder / "summary.json").read_text())


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def mlp_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlp")
    train.main([f"--dir={folder}", *DIGITS, "--model=MLP", "--epochs=1", "--lr=0.1"])
    return folder / "checkpoint-1.pt"


@pytest.fixture(scope="module")
def curve_checkpoint(mlp_checkpoint):
    """A checkpoint of kind 'curve' (the fields train_curve.py writes), made from the MLP's."""
    ckpt = torch.load(mlp_checkpoint, weights_only=True)
    ckpt.update(kind="curve", curve="Bezier", num_bends=3, fix_start=True, fix_end=True)
    path = mlp_checkpoint.parent / "curve-1.pt"
    torch.save(ckpt, path)
    return path


def test_fge_collects_snapshots_and_eval_ensemble_agrees(tmp_path, mlp_checkpoint):
    out = tmp_path / "fge"
    fge.main([f"--dir={out}", f"--ckpt={mlp_checkpoint}", *DIGITS[1:], "--epochs=3", "--cycle=2",
              "--lr_1=0.05", "--lr_2=0.001"])
    # snapshots after the 1st and 3rd FGE epochs, named by the total epoch count (1 + 1, 1 + 3)
    assert {"fge-2.pt", "fge-4.pt", "ensemble.png", "metrics.csv", "args.json", "command.sh"} \
        <= set(os.listdir(out))
    result = summary(out)
    assert result["ensemble_size"] == 2 and result["snapshot_epochs"] == [2, 4]  # the files' numbering
    assert {"ensemble_size", "ens_acc", "ens_nll", "model_acc"} <= set(result)
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["snapshot"] for r in rows] == ["1", "0", "1"]
    assert float(rows[0]["lr"]) == pytest.approx(0.001) and float(rows[1]["lr"]) == pytest.approx(0.05)
    assert float(rows[2]["test_acc"]) == pytest.approx(result["model_acc"])
    snapshot = torch.load(out / "fge-4.pt", weights_only=True)
    assert (snapshot["kind"], snapshot["model"], snapshot["epoch"]) == ("model", "MLP", 4)

    # The same two snapshots through eval_ensemble.py: the same ensemble.
    ens = tmp_path / "ens"
    eval_ensemble.main([f"--dir={ens}", "--use_test", "--ckpt", str(out / "fge-2.pt"), "--ckpt", str(out / "fge-4.pt")])
    both = summary(ens)
    assert both["ens_acc"] == pytest.approx(result["ens_acc"])
    assert both["ens_nll"] == pytest.approx(result["ens_nll"], rel=1e-5)
    assert both["model_acc"][1] == pytest.approx(result["model_acc"])
    assert 0 <= both["ens_ece"] <= 1 and (ens / "ensemble.png").is_file() and (ens / "reliability.png").is_file()
    # A one-model ensemble is that model.
    one = tmp_path / "one"
    eval_ensemble.main([f"--dir={one}", "--use_test", "--ckpt", str(out / "fge-4.pt")])
    single = summary(one)
    assert single["ens_acc"] == pytest.approx(single["model_acc"][0])
    assert single["ens_nll"] == pytest.approx(single["model_nll"][0], rel=1e-4)


def test_sse_from_scratch(tmp_path):
    fge.main([f"--dir={tmp_path}", *DIGITS, "--model=MLP", "--schedule=cosine", "--epochs=2", "--cycle=1",
              "--lr_1=0.1"])
    result = summary(tmp_path)
    assert result["ensemble_size"] == 2 and result["snapshot_epochs"] == [1, 2]
    assert result["ens_acc"] > 50
    assert {"fge-1.pt", "fge-2.pt"} <= set(os.listdir(tmp_path))


def test_swa_resume_gives_the_same_average(tmp_path):
    common = [*DIGITS, "--model=MLP", "--epochs=2", "--lr_init=0.1", "--swa", "--swa_start=1",
              "--swa_lr=0.01", "--save_freq=1", "--eval_freq=1", "--seed=2"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    swa.main([f"--dir={whole}", *common])
    result = summary(whole)
    assert result["swa_n"] == 2 and set(result) == {"swa_n", "swa_test_acc", "swa_test_nll", "swa_test_ece",
                                                    "sgd_test_acc", "sgd_test_nll", "sgd_test_ece"}
    ckpt = torch.load(whole / "checkpoint-1.pt", weights_only=True)
    assert ckpt["swa_n"] == 1 and ckpt["swa_state"] is not None
    # the average of epochs 1 and 2 is the mean of those checkpoints' weights
    second = torch.load(whole / "checkpoint-2.pt", weights_only=True)
    average = torch.load(whole / "swa.pt", weights_only=True)
    assert average["kind"] == "model" and average["optimizer_state"] is None
    for name, value in average["model_state"].items():
        assert torch.allclose(value, (ckpt["model_state"][name] + second["model_state"][name]) / 2, atol=1e-6)

    # Resumed after epoch 1 with no flags repeated: the same average and the same figures.
    swa.main([f"--dir={resumed}", f"--resume={whole / 'checkpoint-1.pt'}"])
    assert state_equal(torch.load(resumed / "swa.pt", weights_only=True)["model_state"], average["model_state"])
    assert summary(resumed) == result


def test_swa_from_a_checkpoint_runs_at_swa_lr(tmp_path, mlp_checkpoint):
    swa.main([f"--dir={tmp_path}", f"--ckpt={mlp_checkpoint}", *DIGITS[1:], "--epochs=2", "--swa_lr=0.02"])
    with open(tmp_path / "metrics.csv") as f:
        assert [float(r["lr"]) for r in csv.DictReader(f)] == [0.02, 0.02]
    assert summary(tmp_path)["swa_n"] == 2 and (tmp_path / "swa.pt").is_file()


def test_the_published_fge_command(tmp_path):
    """The FGE paper's command as written, with --epochs=2, on tiny CIFAR-100 files."""
    data_path = write_cifar(str(tmp_path / "data"), "CIFAR100", images_per_batch=4, test_images=10)
    run = tmp_path / "run"
    os.makedirs(run)
    model = models.build_model("VGG16", 100)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    torch.save({"kind": "model", "model": "VGG16", "model_kwargs": {"in_channels": 3, "image_size": 32},
                "num_classes": 100, "dataset": "CIFAR100", "transform": "VGG", "epoch": 160,
                "model_state": model.state_dict(), "optimizer_state": optimizer.state_dict(),
                "args": {"use_test": True}}, run / "checkpoint-160.pt")
    run_script("fge.py", f"--dir={run}", f"--ckpt={run}/checkpoint-160.pt", f"--data_path={data_path}",
               "--dataset=CIFAR100", "--use_test", "--transform=VGG", "--model=VGG16", "--epochs=2",
               "--wd=5e-4", "--lr_1=1e-2", "--lr_2=1e-2", "--cycle=2")
    # the folder holds the checkpoint's run: FGE's records begin with "fge-", the snapshots are fge-<epoch>.pt
    assert json.loads((run / "fge-summary.json").read_text())["ensemble_size"] == 1
    assert (run / "fge-161.pt").is_file() and not (run / "summary.json").exists()


def test_the_published_swa_command_parses(tmp_path):
    """The SWA paper's command as written (a real run holds out 5000 images: too slow for here)."""
    args = swa.build_parser().parse_args([f"--dir={tmp_path}", "--dataset=CIFAR100", "--data_path=data",
                                          "--model=VGG16", "--epochs=300", "--lr_init=0.05", "--wd=5e-4",
                                          "--swa", "--swa_start=161", "--swa_lr=0.01"])
    assert (args.swa, args.swa_start, args.swa_lr, args.swa_c_epochs) == (True, 161, 0.01, 1)
    assert swa.learning_rate(args, 0) == 0.05 and swa.learning_rate(args, 160) == pytest.approx(0.01)


def test_bad_input(tmp_path, capsys, mlp_checkpoint, curve_checkpoint):
    run = tmp_path / "run"
    common = [f"--dir={run}", "--use_test"]
    assert "even" in user_error(capsys, fge.main, *common, f"--ckpt={mlp_checkpoint}", "--cycle=3")
    assert "positive" in user_error(capsys, fge.main, *common, f"--ckpt={mlp_checkpoint}", "--cycle=0")
    assert "before the first snapshot" in user_error(capsys, fge.main, *common, f"--ckpt={mlp_checkpoint}",
                                                     "--cycle=4", "--epochs=1")
    assert "does not exist" in user_error(capsys, fge.main, *common, f"--ckpt={tmp_path / 'missing.pt'}")
    assert "--ckpt is required" in user_error(capsys, fge.main, *common, "--model=MLP")
    assert "'curve'" in user_error(capsys, fge.main, *common, f"--ckpt={curve_checkpoint}")
    assert "contradicts" in user_error(capsys, fge.main, *common, f"--ckpt={mlp_checkpoint}", "--model=ConvFC")
    assert "'curve'" in user_error(capsys, swa.main, *common, f"--ckpt={curve_checkpoint}", "--epochs=1")
    assert "past the last epoch" in user_error(capsys, swa.main, *common, "--dataset=DIGITS", "--model=MLP",
                                               "--epochs=3", "--swa", "--swa_start=4")
    assert "not a swa.py checkpoint" in user_error(capsys, swa.main, *common, f"--resume={mlp_checkpoint}")
    assert "'curve'" in user_error(capsys, eval_ensemble.main, *common, "--ckpt", mlp_checkpoint,
                                   "--ckpt", curve_checkpoint)
    assert not run.exists()  # nothing written by runs that never started

    other = tmp_path / "convfc.pt"
    ckpt = torch.load(mlp_checkpoint, weights_only=True)
    model = models.build_model("ConvFC", 10, in_channels=1, image_size=8)
    ckpt.update(model="ConvFC", model_state=model.state_dict())
    torch.save(ckpt, other)
    # On the command line too, and an existing run folder is left as it was.
    folder = mlp_checkpoint.parent
    before = {name: (folder / name).read_bytes() for name in os.listdir(folder)}
    line = assert_user_error(run_script("eval_ensemble.py", f"--dir={folder}", "--ckpt", mlp_checkpoint, other,
                                        check=False))
    assert "one architecture" in line
    assert_user_error(run_script("swa.py", f"--dir={folder}", "--dataset=DIGITS", "--model=MLP", "--epochs=2",
                                 "--swa", "--swa_start=3", check=False))
    assert {name: (folder / name).read_bytes() for name in os.listdir(folder)} == before
