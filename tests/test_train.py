"""train.py end to end: run files, resume equivalence, the original command, bad input."""
import csv
import json
import os
import shutil

import torch

from conftest import assert_user_error, run_script, user_error, write_cifar

DIGITS = ["--dataset=DIGITS", "--model=MLP", "--use_test", "--lr=0.05"]


def test_train_writes_the_contracted_files(tmp_path):
    run_script("train.py", f"--dir={tmp_path}", *DIGITS, "--epochs=3", "--save_freq=2")
    assert {"command.sh", "args.json", "metrics.csv", "summary.json", "checkpoint-0.pt",
            "checkpoint-2.pt", "checkpoint-3.pt"} <= set(os.listdir(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"epoch", "train_loss", "train_acc", "test_nll", "test_acc", "test_ece"}
    assert summary["epoch"] == 3 and summary["test_acc"] > 50
    with open(tmp_path / "metrics.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2", "3"]
    ckpt = torch.load(tmp_path / "checkpoint-3.pt", weights_only=True)
    assert (ckpt["kind"], ckpt["model"], ckpt["num_classes"], ckpt["epoch"]) == ("model", "MLP", 10, 3)
    assert ckpt["model_kwargs"] == {"in_channels": 1, "image_size": 8}


def test_resume_gives_the_same_weights(tmp_path):
    """Two epochs in one go, or one and then a resume for the second: the same weights on a CPU.

    PreResNet20 brings BatchNorm buffers, momentum state and the data order along."""
    common = ["--dataset=DIGITS", "--model=PreResNet20", "--use_test", "--epochs=2", "--lr=0.05",
              "--batch_size=128", "--save_freq=1", "--seed=3"]
    run_script("train.py", f"--dir={tmp_path / 'whole'}", *common)
    # the epoch-1 checkpoint alone (in its own folder the run went on to epoch 2), continued elsewhere
    os.makedirs(tmp_path / "half")
    shutil.copy(tmp_path / "whole" / "checkpoint-1.pt", tmp_path / "half")
    run_script("train.py", f"--dir={tmp_path / 'resumed'}", f"--resume={tmp_path / 'half' / 'checkpoint-1.pt'}")
    whole = torch.load(tmp_path / "whole" / "checkpoint-2.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "checkpoint-2.pt", weights_only=True)
    for name in whole["model_state"]:
        assert torch.equal(whole["model_state"][name], resumed["model_state"][name]), name
    assert json.loads((tmp_path / "resumed" / "summary.json").read_text()) == \
        json.loads((tmp_path / "whole" / "summary.json").read_text())


def test_the_original_readme_endpoint_command(tmp_path):
    data_path = write_cifar(str(tmp_path / "data"), "CIFAR10", images_per_batch=20, test_images=20)
    out = tmp_path / "vgg"
    run_script("train.py", f"--dir={out}", "--dataset=CIFAR10", f"--data_path={data_path}",
               "--model=VGG16", "--epochs=1", "--lr=0.05", "--wd=5e-4", "--use_test", "--transform=VGG")
    assert json.loads((out / "summary.json").read_text())["epoch"] == 1


def test_bad_input(tmp_path, capsys, monkeypatch):
    # one through a real process (the exit status as a shell sees it), the others in this process
    assert "invalid choice" in assert_user_error(
        run_script("train.py", f"--dir={tmp_path}", "--dataset=DIGITS", "--model=ResNet9000", check=False))
    import train

    # no network: the download fails at once through an unreachable proxy
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    line = user_error(capsys, train.main, f"--dir={tmp_path}", "--dataset=CIFAR10", "--model=MLP",
                      f"--data_path={tmp_path / 'nowhere'}")
    assert "nowhere" in line
    assert not (tmp_path / "nowhere").exists()  # no empty data/cifar10 folder left behind
    assert "does not exist" in user_error(capsys, train.main, f"--dir={tmp_path}", *DIGITS,
                                          f"--resume={tmp_path / 'missing.pt'}")
    junk = tmp_path / "junk.pt"
    junk.write_text("garbage")
    assert "cannot read" in user_error(capsys, train.main, f"--dir={tmp_path / 'run'}", *DIGITS, f"--resume={junk}")
    assert not (tmp_path / "run").exists()  # nothing written for a run that never started
    assert "16x16" in user_error(capsys, train.main, f"--dir={tmp_path}", "--dataset=DIGITS", "--model=VGG16")


def test_bad_input_leaves_an_existing_run_intact(tmp_path, capsys):
    import cli
    import train

    cli.run(train.main, [f"--dir={tmp_path}", *DIGITS, "--epochs=1"])
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    user_error(capsys, train.main, f"--dir={tmp_path}", *DIGITS, "--epochs=1", f"--resume={tmp_path / 'missing.pt'}")
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == before
