"""The data figures: the augmented batch pipeline, ConvFC's training end to end, and a Fashion-MNIST
epoch of the study's model, each against the original approach's DataLoader."""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import torch
import torchvision.transforms as T

import data
import utils
from benchmarks.common import head, model_and_sgd, times_amp
from benchmarks.reference import (BATCH, reference_dataset, reference_evaluate, reference_loader,
                                  reference_train_epoch)
from benchmarks.timing import race, with_threads

WORKERS = (0, 2)  # the DataLoader's workers on a 2-core CPU: the faster counts
FASHION_MODEL = "MLP"  # scripts/fashion_tables.sh's model


def bench_pipeline(root, ours: data.Dataset, images: int, device, repeats: int) -> dict:
    """Images per second of an augmented training epoch: our Loader against the DataLoader."""
    reference = reference_dataset(root, train=True, augment=True)
    loader = data.make_loaders(replace(ours, train=head(ours.train, images)), BATCH, "VGG", device=device)["train"]

    def drain(batches):
        for x, y in batches:
            x.to(device), y.to(device)

    contenders = {f"reference_workers{w}": (lambda dl=reference_loader(reference, images, w, True): drain(dl))
                  for w in WORKERS}
    contenders["ours"] = lambda: drain(loader)
    best = race(contenders, repeats, device)
    figures = {f"pipeline_images_per_s_{k}": images / s for k, s in best.items()}
    baseline = max(images / best[f"reference_workers{w}"] for w in WORKERS)
    figures["pipeline_speedup"] = figures["pipeline_images_per_s_ours"] / baseline
    return figures


def bench_train_convfc(root, ours: data.Dataset, images: int, device, repeats: int, compile_: bool,
                       tiny: bool = False) -> dict:
    """Training images per second, ConvFC: train_epoch on our Loader against the original loop (ours
    in fp32, and under --amp --channels_last where ``times_amp``)."""
    reference = reference_dataset(root, train=True, augment=True)
    subset = replace(ours, train=head(ours.train, images))
    contenders = {}
    for w in WORKERS:
        model, opt = model_and_sgd("ConvFC", device, reference=True)
        dl = reference_loader(reference, images, w, True)
        contenders[f"reference_workers{w}"] = lambda m=model, o=opt, dl=dl: reference_train_epoch(m, dl, o, device)
    configs = {"fp32": (False, False, False)}
    if times_amp(device, tiny):
        configs["amp_channels_last"] = (True, True, False)
        if compile_:
            configs["amp_channels_last_compile"] = (True, True, True)
    for name, (amp, channels_last, compiled) in configs.items():
        model, opt = model_and_sgd("ConvFC", device, channels_last)
        forward = torch.compile(model) if compiled else model
        loader = data.make_loaders(subset, BATCH, "VGG", device=device, channels_last=channels_last)["train"]
        contenders[f"ours_{name}"] = lambda f=forward, o=opt, dl=loader, amp=amp: utils.train_epoch(f, dl, o, amp=amp)
    best = race(contenders, repeats, device)
    figures = {f"train_images_per_s_{k}": images / s for k, s in best.items()}
    baseline = max(v for k, v in figures.items() if "reference" in k)
    fastest = max((k for k in figures if "ours" in k), key=figures.get)
    figures["train_fastest_options"] = fastest.removeprefix("train_images_per_s_ours_")
    figures["train_speedup_convfc"] = figures[fastest] / baseline
    return figures


def write_fashion(root: str, n_train: int, n_test: int) -> str:
    """Fashion-MNIST's uncompressed idx files in torchvision's layout ``root/FashionMNIST/raw/``, where both
    sides read them: Debian's real images where its package is installed, random ones of that shape if not."""
    raw = os.path.join(root, "FashionMNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    debian = data.DEBIAN_FOLDERS["FashionMNIST"]
    rng = np.random.RandomState(0)
    for part, n in (("train", n_train), ("test", n_test)):
        for file, shape in zip(data.IDX_FILES[part], ((n, 28, 28), (n,))):
            path = os.path.join(debian, file + ".gz")
            values = data.read_idx(path)[:n] if os.path.isfile(path) else \
                rng.randint(0, 256 if len(shape) > 1 else 10, shape).astype(np.uint8)
            data.write_idx(os.path.join(raw, file), values)
    return raw


def bench_fashion_epoch(root: str, train_images: int, test_images: int, device, repeats: int,
                        tiny: bool = False) -> dict:
    """A Fashion-MNIST epoch of the study's model, end to end: training on every training image and the
    test set's evaluation. Ours (train.py's loop: data.Loader on the device, utils.train_epoch and
    evaluate, the options below; the fastest counts) against the original approach (torchvision's
    FashionMNIST, PIL transforms, a DataLoader with 0 or 2 workers, the faster counts; fp32,
    ``torch.optim.SGD``, an ``.item()`` per step)."""
    import torchvision

    raw = write_fashion(root, train_images, test_images)
    mean, std = data.normalisation("VGG", 1)
    padding = data.AUGMENTATION["FashionMNIST"][0]
    augment = [T.RandomCrop(28, padding=padding), T.RandomHorizontalFlip()]
    plain = [T.ToTensor(), T.Normalize(mean, std)]
    train_set = torchvision.datasets.FashionMNIST(root, train=True, transform=T.Compose(augment + plain))
    test_set = torchvision.datasets.FashionMNIST(root, train=False, transform=T.Compose(plain))
    # one thread (on a CPU): how scripts/fashion_tables.sh runs (OMP_NUM_THREADS=1, see its header); both
    # sides get it, and each side's fastest configuration counts
    one_thread = [None, 1] if device.type == "cpu" else [None]
    contenders = {}
    for w, threads in ((w, t) for w in WORKERS for t in one_thread):
        model, opt = model_and_sgd(FASHION_MODEL, device, reference=True, shape=(1, 28))
        train_dl = reference_loader(train_set, train_images, w, True)
        test_dl = reference_loader(test_set, test_images, w, False)

        def reference(m=model, o=opt, train_dl=train_dl, test_dl=test_dl):
            reference_train_epoch(m, train_dl, o, device)
            m.eval()
            reference_evaluate(m, test_dl, device)
        contenders[f"reference_workers{w}" + ("_one_thread" if threads else "")] = with_threads(reference, threads)
    ours = data.load_dataset("FashionMNIST", raw, use_test=True, download=False)
    configs = {"fp32_channels_last": (None, None)}
    if times_amp(device, tiny):
        configs["amp_channels_last"] = (torch.bfloat16, None)
    if device.type == "cpu":
        configs["fp32_channels_last_one_thread"] = (None, 1)
    for name, (amp, threads) in configs.items():
        model, opt = model_and_sgd(FASHION_MODEL, device, True, shape=(1, 28))
        loaders = data.make_loaders(ours, BATCH, "VGG", device=device, channels_last=True)

        def epoch(m=model, o=opt, loaders=loaders, amp=amp):
            utils.train_epoch(m, loaders["train"], o, amp=amp)
            utils.evaluate(m, loaders["test"], amp=amp)
        contenders[f"ours_{name}"] = with_threads(epoch, threads)
    best = race(contenders, repeats, device)
    figures = {f"fashion_epoch_s_{k}": s for k, s in best.items()}
    fastest = min((k for k in best if k.startswith("ours")), key=best.get)
    reference = min((k for k in best if k.startswith("reference")), key=best.get)
    figures.update({"fashion_model": FASHION_MODEL, "fashion_real_images": os.path.isdir(data.DEBIAN_FOLDERS["FashionMNIST"]),
                    "fashion_fastest_options": fastest.removeprefix("ours_"),
                    "fashion_epoch_images_per_s_ours": train_images / best[fastest],
                    "fashion_reference_fastest": reference.removeprefix("reference_"),
                    "fashion_epoch_speedup": best[reference] / best[fastest]})
    return figures

