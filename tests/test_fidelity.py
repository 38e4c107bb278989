"""Fidelity to the original code: the numbers it fixes, computed here independently of ours.

The table-level check runs every command of the original READMEs
(timgaripov/dnn-mode-connectivity and timgaripov/swa) through our scripts' own
argument handling, data loading and schedules, with the networks swapped for a tiny
one and the training and evaluation passes recorded instead of computed. For each
command it compares, against the original code's rules written out below: which
images train, which images evaluate, the normalisation constants, and the learning
rate of every epoch (of every iteration, for FGE).
"""
from __future__ import annotations

import csv
import math
import os
import pickle
import re
import shlex

import numpy as np
import pytest
import torch
import torch.nn as nn

import cli
import models
import utils
from conftest import run_script

# ---------------------------------------------------------------------------------------------
# The original code's rules, written out from its source (not from ours).

# dnn-mode-connectivity/data.py: Transforms.CIFAR10.{VGG,ResNet}; swa/models/*.py: transform_train
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CIFAR = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
SWA_NORMALISATION = {"VGG16": IMAGENET, "PreResNet110": CIFAR, "PreResNet164": CIFAR, "WideResNet28x10": CIFAR}


def original_train_lr(lr, epochs):
    """dnn-mode-connectivity/train.py: ``for epoch in range(1, epochs + 1)``, alpha = epoch / epochs."""
    rates = []
    for epoch in range(1, epochs + 1):
        alpha = epoch / epochs
        factor = 1.0 if alpha <= 0.5 else (1.0 - (alpha - 0.5) / 0.4 * 0.99 if alpha <= 0.9 else 0.01)
        rates.append(factor * lr)
    return rates


def original_swa_lr(lr_init, epochs, swa, swa_start=161, swa_lr=0.05):
    """swa/train.py: ``for epoch in range(0, epochs)``, t = epoch / (swa_start if swa else epochs)."""
    rates = []
    for epoch in range(epochs):
        t = epoch / (swa_start if swa else epochs)
        ratio = swa_lr / lr_init if swa else 0.01
        factor = 1.0 if t <= 0.5 else (1.0 - (1.0 - ratio) * (t - 0.5) / 0.4 if t <= 0.9 else ratio)
        rates.append(lr_init * factor)
    return rates


def original_fge_lr(epochs, cycle, lr_1, lr_2, iters):
    """dnn-mode-connectivity/utils.py cyclic_learning_rate, called with iter / num_iters."""
    rates = []
    for epoch in range(epochs):
        per_epoch = []
        for it in range(iters):
            t = ((epoch % cycle) + it / iters) / cycle
            per_epoch.append(lr_1 * (1 - 2 * t) + lr_2 * 2 * t if t < 0.5 else lr_1 * (2 * t - 1) + lr_2 * (2 - 2 * t))
        rates.append(per_epoch)
    return rates


def original_split(use_test, n_train):
    """dnn-mode-connectivity/data.py: with use_test all training images train and the test set
    evaluates; without, the first n - 5000 train and the last 5000 evaluate."""
    if use_test:
        return list(range(n_train)), "test"
    return list(range(n_train - 5000)), list(range(n_train - 5000, n_train))


# ---------------------------------------------------------------------------------------------
# CIFAR-format files whose images say which image they are.

TRAIN_PER_FILE, TEST = 1012, 24  # 5060 training images: 5000 can be held out, 60 then train


def encoded_images(first: int, n: int, rng) -> np.ndarray:
    """Random images whose channel 0, row 0, pixels 0-2 hold the image's index, base 256."""
    images = rng.randint(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    index = np.arange(first, first + n)
    for k in range(3):
        images[:, 0, 0, k] = (index // 256 ** (2 - k)) % 256
    return images


def decode(images: torch.Tensor, padding: int) -> list[int]:
    """The indices written by ``encoded_images`` (of uint8 images, padded by ``padding``)."""
    pixels = images[:, 0, padding, padding:padding + 3].long()
    return (pixels[:, 0] * 65536 + pixels[:, 1] * 256 + pixels[:, 2]).tolist()


@pytest.fixture(scope="module")
def indexed_cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("indexed")
    rng = np.random.RandomState(0)
    for name, folder, files, key in (("CIFAR10", "cifar10/cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "labels"),
                                     ("CIFAR100", "cifar100/cifar-100-python", ["train"], "fine_labels")):
        os.makedirs(root / folder)
        per_file = TRAIN_PER_FILE * 5 // len(files)
        for i, file in enumerate(files):
            batch = {"data": encoded_images(i * per_file, per_file, rng).reshape(per_file, -1),
                     key: rng.randint(0, 10, per_file).tolist()}
            with open(root / folder / file, "wb") as f:
                pickle.dump(batch, f)
        test = {"data": encoded_images(10 ** 6, TEST, rng).reshape(TEST, -1), key: rng.randint(0, 10, TEST).tolist()}
        with open(root / folder / ("test_batch" if name == "CIFAR10" else "test"), "wb") as f:
            pickle.dump(test, f)
    return str(root)


# ---------------------------------------------------------------------------------------------
# Our scripts, run for real with the training and evaluation passes recorded instead.

class Recorder:
    def __init__(self):
        self.train_loaders, self.epoch_rates, self.eval_loaders, self.bn_loaders = [], [], [], []

    def train_epoch(self, run, forward, loader, optimizer, epoch, *, resume=None, lr=None, lr_fn=None,
                    regularizer=None, amp=None, scaler=None, draws=None):
        self.train_loaders.append(loader)
        n = len(loader)
        self.epoch_rates.append([lr_fn(i / n) if lr_fn else lr for i in range(n)])
        return {"loss": 1.0, "nll": 1.0, "accuracy": 50.0}

    def evaluate(self, forward, loader, amp=False, ece_bins=15, logits=False):
        self.eval_loaders.append(loader)
        n, classes = loader.num_images, 10
        return ({"nll": 1.0, "accuracy": 50.0, "ece": 0.0}, np.full((n, classes), 1.0 / classes),
                loader.labels.cpu().numpy())

    def update_bn(self, model, loader, forward=None, amp=False):
        self.bn_loaders.append(loader)


def tiny_model(num_classes, in_channels=3, image_size=32):
    return nn.Sequential(nn.Conv2d(in_channels, 2, 3), nn.BatchNorm2d(2), nn.Flatten(),
                         nn.Linear(2 * (image_size - 2) ** 2, num_classes))


@pytest.fixture
def recorded(monkeypatch):
    """Our scripts with every architecture a tiny network and no real training or evaluation."""
    recorder = Recorder()
    for name in list(models.MODELS):
        monkeypatch.setitem(models.MODELS, name, tiny_model)
    monkeypatch.setattr(cli, "train_epoch", recorder.train_epoch)
    monkeypatch.setattr(utils, "evaluate_with_predictions", recorder.evaluate)
    monkeypatch.setattr(utils, "update_bn", recorder.update_bn)
    return recorder


def run_main(command: str, **placeholders) -> None:
    """One README command (``python3 SCRIPT.py FLAGS``), placeholders filled, run in-process."""
    import importlib

    for key, value in placeholders.items():
        command = command.replace(f"<{key}>", value)
    words = shlex.split(command)
    assert words[0] == "python3", command
    importlib.import_module(words[1][:-3]).main(words[2:])


def normalisation_of(loader) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) from the loader's affine map x -> x * scale + shift of the 0-255 pixels."""
    scale, shift = loader.scale.flatten().double(), loader.shift.flatten().double()
    return (-shift / (scale * 255)).numpy(), (1 / (scale * 255)).numpy()


def check_images(recorder, use_test: bool, normalisation) -> None:
    trained, evaluated = original_split(use_test, 5 * TRAIN_PER_FILE)
    for loader in recorder.train_loaders:
        assert sorted(decode(loader.images, loader.padding if loader.augment else 0)) == trained
        assert loader.augment and loader.padding == 4 and loader.flip  # RandomCrop(32, 4), RandomHorizontalFlip
    expected = [10 ** 6 + i for i in range(TEST)] if evaluated == "test" else evaluated
    evaluation_sets = 0
    for loader in recorder.eval_loaders:  # the evaluation set, plain; or the training set (train loss)
        ids = decode(loader.images, loader.padding if loader.augment else 0)
        if ids == expected:
            assert not loader.augment
            evaluation_sets += 1
        else:
            assert ids == trained
    assert evaluation_sets > 0
    for loader in recorder.train_loaders + recorder.eval_loaders:
        mean, std = normalisation_of(loader)
        np.testing.assert_allclose(mean, normalisation[0], rtol=1e-6)
        np.testing.assert_allclose(std, normalisation[1], rtol=1e-6)


def expand(command: str) -> list[str]:
    """A README line with ``[A or B]`` / ``[A|B]`` choices as one command per choice."""
    match = re.search(r"\[([^\]]+?)(?: or |\|)([^\]]+)\]", command)
    if not match:
        return [command]
    return [c for choice in match.groups() for c in expand(command[:match.start()] + choice + command[match.end():])]


MC_ENDPOINTS = [  # dnn-mode-connectivity README, "Training the endpoints"
    "python3 train.py --dir=<DIR> --dataset=[CIFAR10 or CIFAR100] --data_path=<PATH> --model=VGG16 --epochs=200 --lr=0.05 --wd=5e-4 --use_test --transform=VGG",
    "python3 train.py --dir=<DIR> --dataset=[CIFAR10 or CIFAR100] --data_path=<PATH>  --model=[PreResNet110 or PreResNet164] --epochs=150  --lr=0.1 --wd=3e-4 --use_test --transform=ResNet",
    "python3 train.py --dir=<DIR> --dataset=[CIFAR10 or CIFAR100] --data_path=<PATH> --model=WideResNet28x10 --epochs=200 --lr=0.1 --wd=5e-4 --use_test --transform=ResNet",
]
MC_CURVES = [  # "Training the curves"
    "python3 train.py --dir=<DIR> --dataset=[CIFAR10 or CIFAR100] --use_test --transform=VGG --data_path=<PATH> --model=VGG16 --curve=[Bezier|PolyChain] --num_bends=3  --init_start=<CKPT1> --init_end=<CKPT2> --fix_start --fix_end --epochs=600 --lr=0.015 --wd=5e-4",
    "python3 train.py --dir=<DIR> --dataset=[CIFAR10 or CIFAR100] --use_test --transform=ResNet --data_path=<PATH> --model=PreResNet164 --curve=[Bezier|PolyChain] --num_bends=3  --init_start=<CKPT1> --init_end=<CKPT2> --fix_start --fix_end --epochs=200 --lr=0.03 --wd=3e-4",
    "python3 train.py --dir=<DIR> --dataset=[CIFAR10 or CIFAR100] --use_test --transform=ResNet --data_path=<PATH> --model=WideResNet28x10 --curve=[Bezier|PolyChain] --num_bends=3  --init_start=<CKPT1> --init_end=<CKPT2> --fix_start --fix_end --epochs=200 --lr=0.03 --wd=5e-4",
]
MC_FGE = [  # "Fast Geometric Ensembling": the endpoint, then FGE from its epoch-160 checkpoint
    ("python3 train.py --dir=<DIR> --data_path=<PATH> --dataset=CIFAR100 --use_test --transform=VGG --model=VGG16 --epochs=200 --wd=5e-4 --lr=0.05 --save_freq=40",
     "python3 fge.py --dir=<DIR>/fge --ckpt=<DIR>/checkpoint-160.pt --data_path=<PATH> --dataset=CIFAR100 --use_test --transform=VGG --model=VGG16 --epochs=40 --wd=5e-4 --lr_1=1e-2 --lr_2=1e-2 --cycle=2"),
    ("python3 train.py --dir=<DIR>  --data_path=<PATH> --dataset=CIFAR100 --use_test --transform=ResNet --model=PreResNet164 --epochs=200 --wd=3e-4 --lr=0.1 --save_freq=40",
     "python3 fge.py --dir=<DIR>/fge --ckpt=<DIR>/checkpoint-160.pt --data_path=<PATH> --dataset=CIFAR100 --use_test --transform=ResNet --model=PreResNet164 --epochs=40 --wd=3e-4 --lr_1=0.05 --lr_2=0.01 --cycle=2"),
]
SWA = [  # swa README, "Examples"
    "python3 train.py --dir=<DIR> --dataset=CIFAR100 --data_path=<PATH> --model=VGG16 --epochs=200 --lr_init=0.05 --wd=5e-4",
    "python3 train.py --dir=<DIR> --dataset=CIFAR100 --data_path=<PATH> --model=VGG16 --epochs=300 --lr_init=0.05 --wd=5e-4 --swa --swa_start=161 --swa_lr=0.01",
    "python3 train.py --dir=<DIR> --dataset=CIFAR100 --data_path=<PATH>  --model=[PreResNet110 or PreResNet164] --epochs=150  --lr_init=0.1 --wd=3e-4",
    "python3 train.py --dir=<DIR> --dataset=CIFAR100 --data_path=<PATH>  --model=[PreResNet110 or PreResNet164] --epochs=225 --lr_init=0.1 --wd=3e-4 --swa --swa_start=126 --swa_lr=0.05",
    "python3 train.py --dir=<DIR> --dataset=CIFAR10 --data_path=<PATH>  --model=[PreResNet110 or PreResNet164] --epochs=225 --lr_init=0.1 --wd=3e-4 --swa --swa_start=126 --swa_lr=0.01",
    "python3 train.py --dir=<DIR> --dataset=CIFAR100 --data_path=<PATH> --model=WideResNet28x10 --epochs=200 --lr_init=0.1 --wd=5e-4",
    "python3 train.py --dir=<DIR> --dataset=CIFAR100 --data_path=<PATH> --model=WideResNet28x10 --epochs=300 --lr_init=0.1 --wd=5e-4 --swa --swa_start=161 --swa_lr=0.05",
    # the README's generic commands, every default left to the script
    "python3 train.py --dir=<DIR> --data_path=<PATH> --model=VGG16",
    "python3 train.py --dir=<DIR> --data_path=<PATH> --model=PreResNet164 --swa",
]


def flags(command: str) -> dict:
    return {m.group(1): m.group(2) for m in re.finditer(r"--(\w+)=(\S+)", command)}


@pytest.mark.parametrize("command", [c for line in MC_ENDPOINTS for c in expand(line)])
def test_readme_endpoint_commands(command, recorded, indexed_cifar, tmp_path):
    run_main(command, DIR=str(tmp_path), PATH=indexed_cifar)
    f = flags(command)
    check_images(recorded, True, IMAGENET if f["transform"] == "VGG" else CIFAR)
    assert [r[0] for r in recorded.epoch_rates] == pytest.approx(original_train_lr(float(f["lr"]), int(f["epochs"])))
    assert all(len(set(r)) == 1 for r in recorded.epoch_rates)  # constant within an epoch


@pytest.mark.parametrize("command", [c for line in MC_CURVES for c in expand(line)])
def test_readme_curve_commands(command, recorded, indexed_cifar, tmp_path):
    f = flags(command)
    ends = []
    for seed in (1, 2):  # the endpoints: any model checkpoints of this model, dataset and split
        folder = tmp_path / f"end{seed}"
        run_main(f"python3 train.py --dir={folder} --dataset={f['dataset']} --data_path=<PATH> --model={f['model']} "
                 f"--epochs=1 --use_test --transform={f['transform']} --seed={seed}", PATH=indexed_cifar)
        ends.append(str(folder / "checkpoint-1.pt"))
    recorded.__init__()
    run_main(command, DIR=str(tmp_path / "curve"), PATH=indexed_cifar, CKPT1=ends[0], CKPT2=ends[1])
    check_images(recorded, True, IMAGENET if f["transform"] == "VGG" else CIFAR)
    assert [r[0] for r in recorded.epoch_rates] == pytest.approx(original_train_lr(float(f["lr"]), int(f["epochs"])))


@pytest.mark.parametrize("endpoint,fge", MC_FGE)
def test_readme_fge_commands(endpoint, fge, recorded, indexed_cifar, tmp_path):
    run_main(endpoint, DIR=str(tmp_path), PATH=indexed_cifar)
    recorded.__init__()
    run_main(fge, DIR=str(tmp_path), PATH=indexed_cifar)
    f = flags(fge)
    check_images(recorded, True, IMAGENET if f["transform"] == "VGG" else CIFAR)
    iters = math.ceil(5 * TRAIN_PER_FILE / 128)
    expected = original_fge_lr(int(f["epochs"]), int(f["cycle"]), float(f["lr_1"]), float(f["lr_2"]), iters)
    assert np.allclose(recorded.epoch_rates, expected)


@pytest.mark.parametrize("command", [c for line in SWA for c in expand(line)])
def test_readme_swa_commands(command, recorded, indexed_cifar, tmp_path):
    # the SWA repository's train.py is our swa.py
    run_main(command.replace("train.py", "swa.py"), DIR=str(tmp_path), PATH=indexed_cifar)
    f = flags(command)
    swa = "--swa " in command + " "
    check_images(recorded, True, SWA_NORMALISATION[f["model"]])  # always all training images, the test set
    expected = original_swa_lr(float(f.get("lr_init", 0.1)), int(f.get("epochs", 200)), swa,
                               float(f.get("swa_start", 161)), float(f.get("swa_lr", 0.05)))
    assert [r[0] for r in recorded.epoch_rates] == pytest.approx(expected)


def test_readme_generic_commands_without_use_test_hold_out_the_last_5000(recorded, indexed_cifar, tmp_path):
    # "Use the --use_test flag if you want to use the test set instead of validation set
    # (formed from the last 5000 training objects)"
    run_main("python3 train.py --dir=<DIR> --dataset=CIFAR10 --data_path=<PATH> --transform=ResNet "
             "--model=PreResNet164 --epochs=3 --lr=0.1 --wd=3e-4", DIR=str(tmp_path / "a"), PATH=indexed_cifar)
    check_images(recorded, False, CIFAR)
    run_main("python3 eval_curve.py --dir=<DIR> --data_path=<PATH> --init_start=<A> --init_end=<A> --num_points=2",
             DIR=str(tmp_path / "b"), PATH=indexed_cifar, A=str(tmp_path / "a" / "checkpoint-3.pt"))
    check_images(recorded, False, CIFAR)


def test_readme_eval_curve_command(recorded, indexed_cifar, tmp_path):
    ends = []
    for seed in (1, 2):
        run_main(f"python3 train.py --dir={tmp_path / str(seed)} --dataset=CIFAR100 --data_path=<PATH> --model=VGG16 "
                 f"--epochs=1 --use_test --seed={seed}", PATH=indexed_cifar)
        ends.append(str(tmp_path / str(seed) / "checkpoint-1.pt"))
    run_main(f"python3 train.py --dir={tmp_path / 'c'} --dataset=CIFAR100 --data_path=<PATH> --model=VGG16 --epochs=1 "
             f"--use_test --curve=Bezier --num_bends=3 --init_start={ends[0]} --init_end={ends[1]} --fix_start --fix_end",
             PATH=indexed_cifar)
    recorded.__init__()
    # "python3 eval_curve.py --dir=<DIR> --dataset=<DATASET> --data_path=<PATH> --transform=<TRANSFORM>
    #  --model=<MODEL> --wd=<WD> --curve=<CURVE> --num_bends=<N_BENDS> --ckpt=<CKPT> --num_points=<N> [--use_test]"
    run_main("python3 eval_curve.py --dir=<DIR> --dataset=CIFAR100 --data_path=<PATH> --transform=VGG --model=VGG16 "
             "--wd=5e-4 --curve=Bezier --num_bends=3 --ckpt=<CKPT> --num_points=5 --use_test",
             DIR=str(tmp_path / "eval"), PATH=indexed_cifar, CKPT=str(tmp_path / "c" / "checkpoint-1.pt"))
    # the original's loaders['train'] with shuffle_train=False: augmented, in order, batch 128,
    # for the BatchNorm update and the train loss of every point; the test set plain
    assert len(recorded.bn_loaders) == 5
    for loader in recorded.bn_loaders:
        assert loader.augment and not loader.shuffle and loader.batch_size == 128
        assert decode(loader.images, 4) == list(range(5 * TRAIN_PER_FILE))
    assert [decode(x.images, 4) == list(range(5 * TRAIN_PER_FILE)) for x in recorded.eval_loaders[0::2]] == [True] * 5


# ---------------------------------------------------------------------------------------------
# The parts behind the table: each against the original's own formula or default.

def test_train_lr_column_is_the_rate_of_the_originals_epoch(tmp_path):
    """A real run: metrics.csv's lr of epoch e is the rate the original uses in its epoch e."""
    run_script("train.py", f"--dir={tmp_path}", "--dataset=DIGITS", "--model=MLP", "--epochs=10", "--lr=0.1",
               "--use_test")
    with open(tmp_path / "metrics.csv") as f:
        rates = [float(row["lr"]) for row in csv.DictReader(f)]
    assert rates == pytest.approx(original_train_lr(0.1, 10))
    # the decay starts at epoch 6 of 10 (alpha 0.6), not at epoch 7 as a count from 0 would have it
    assert rates[4] == pytest.approx(0.1) and rates[5] < 0.1


def test_wide_resnet_last_batchnorm_momentum_is_09():
    net = models.build_model("WideResNet28x10", 10)
    momenta = [m.momentum for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    # swa/models/wide_resnet.py and dnn-mode-connectivity/models/wide_resnet.py:
    # self.bn1 = nn.BatchNorm2d(nstages[3], momentum=0.9); the blocks' BatchNorms keep 0.1
    assert momenta[-1] == 0.9 and set(momenta[:-1]) == {0.1}


def test_wide_resnet_keeps_pytorchs_default_initialisation():
    """The originals define conv_init (Xavier) but never apply it: PyTorch's default init,
    weights and biases uniform in +-1/sqrt(fan_in) (so a weight's std is 1/sqrt(3 fan_in))."""
    torch.manual_seed(0)
    net = models.build_model("WideResNet28x10", 10)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            bound = 1 / math.sqrt(fan_in)
            assert m.weight.abs().max() <= bound and m.bias.abs().max() <= bound
            if m.weight.numel() > 10000:
                assert float(m.weight.detach().std()) == pytest.approx(bound / math.sqrt(3), rel=0.05)
            assert m.bias.abs().max() > 0  # not zeroed


def test_swa_defaults_are_the_swa_codes():
    import swa

    args = swa.build_parser().parse_args([])
    # swa/train.py: --lr_init 0.1, --epochs 200, --save_freq 25, --eval_freq 5, --momentum 0.9,
    # --wd 1e-4, --swa_start 161, --swa_lr 0.05, --swa_c_epochs 1, --batch_size 128, --seed 1
    assert (args.lr_init, args.epochs, args.save_freq, args.eval_freq, args.momentum, args.wd) == \
        (0.1, 200, 25, 5, 0.9, 1e-4)
    assert (args.swa_lr, args.swa_c_epochs, args.seed) == (0.05, 1, 1)


@pytest.mark.parametrize("script,defaults", [
    # dnn-mode-connectivity's argparse defaults
    ("train.py", dict(epochs=200, lr=0.01, wd=1e-4, momentum=0.9, save_freq=50, seed=1, transform=None)),
    ("fge.py", dict(epochs=20, cycle=4, lr_1=0.05, lr_2=0.0001, wd=1e-4, momentum=0.9, seed=1)),
    ("eval_curve.py", dict(num_points=61)),
    ("plane.py", dict(grid_points=21, curve_points=61, margin_left=0.2, margin_right=0.2, margin_bottom=0.2,
                      margin_top=0.2)),
])
def test_script_defaults_are_the_originals(script, defaults):
    import importlib

    args = importlib.import_module(script[:-3]).build_parser().parse_args(["--ckpt=x"] if script == "plane.py" else [])
    for name, value in defaults.items():
        if name == "transform" and script == "train.py":
            value = "VGG"
        assert getattr(args, name) == value, name


def test_original_flags_are_accepted_with_both_spellings():
    import train

    args = train.build_parser().parse_args(["--num-workers=2", "--use-test", "--save-freq=3"])
    assert (args.num_workers, args.use_test, args.save_freq) == (2, True, 3)


def test_train_eval_loader_is_the_augmented_training_set_in_order():
    """The original's eval loader: RandomCrop(32, padding=4) and a random flip of each image,
    in dataset order. Each image of ours is found among the 9 x 9 x 2 crops of its source."""
    import data

    rng = np.random.RandomState(1)
    images = torch.from_numpy(rng.randint(0, 256, (40, 3, 32, 32), dtype=np.uint8))
    dataset = data.Dataset("CIFAR10", data.ImageSet(images, torch.arange(40)), data.ImageSet(images, torch.arange(40)),
                           10, True, padding=4, flip=True)
    loader = data.make_loaders(dataset, 16, "VGG")["train_augmented"]
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in data.NORMALISATIONS["VGG"])
    padded = torch.nn.functional.pad(images.float(), [4] * 4)
    found = set()
    for x, y in loader:
        pixels = torch.round((x * std + mean) * 255)
        for img, label in zip(pixels, y.tolist()):
            candidates = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (0, 1)
                          if torch.equal((lambda c: c.flip(-1) if flip else c)(padded[label, :, dy:dy + 32, dx:dx + 32]), img)]
            assert candidates, label
            found.add(candidates[0])
    assert [int(v) for _, y in loader for v in y] == list(range(40))  # in order
    assert len(found) > 10  # the offsets and flips vary


def test_eval_ensemble_without_dir_only_prints(digits_checkpoint, tmp_path, monkeypatch, capsys):
    """The original eval_ensemble.py has no --dir: it prints. Without --dir, so does ours."""
    import eval_ensemble

    monkeypatch.chdir(tmp_path)
    eval_ensemble.main(["--ckpt", digits_checkpoint, "--ckpt", digits_checkpoint])
    assert "ensemble of 2" in capsys.readouterr().out
    assert os.listdir(tmp_path) == []
