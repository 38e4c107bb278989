"""The epoch figures, made for a GPU: a whole CIFAR epoch (50,000 images there) of PreResNet164 and
of WideResNet28x10, and an FGE epoch and an SWA epoch of VGG16, each against the original approach
on the same device.

The original approach (benchmarks.reference): torchvision's CIFAR10 with PIL transforms in a
DataLoader whose workers start again at every pass (the original's loaders are not persistent;
on a GPU 4 workers, its ``--num-workers`` default), fp32, ``torch.optim.SGD`` and an ``.item()``
per step. Ours: data.Loader on the device, utils.train_epoch and evaluate, ``--amp`` (bfloat16)
with channels-last memory (and fp32 channels-last on a CPU, the faster counts; fp32 alone where
the CPU emulates bfloat16). Each side is warmed up on a few batches, then timed over one epoch.

The FLOPs of a training step (forward and backward, ``torch.utils.flop_counter``) over the epoch's
seconds, against the bfloat16 matmul peak measured in the same run, give
``wrn28x10_fraction_of_bf16_peak``.

On a CPU these run only when named (``--only epochs``, ``--only fge_swa``) or under ``--tiny``,
with fewer images (an MLP for every model under --tiny): one WideResNet28x10 epoch of 50,000 images
(785 TFLOP of training) would take hours there.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from functools import partial

import torch

import data
import ensembles
import utils
from benchmarks.common import head, model_and_sgd, times_amp
from benchmarks.reference import (BATCH, reference_bn_update, reference_dataset, reference_evaluate,
                                  reference_loader, reference_moving_average, reference_predictions,
                                  reference_train_epoch)
from benchmarks.timing import race, training_flops

EPOCH_MODELS = {"preresnet164": "PreResNet164", "wrn28x10": "WideResNet28x10"}  # figure prefix: model
FGE_SWA_MODEL = "VGG16"  # the first network of both papers' tables
WARM_UP_BATCHES = 2  # per loader: cuDNN's algorithm search and the allocator's first blocks, not timed
FGE_CYCLE, FGE_LR_1, FGE_LR_2 = 2, 0.05, 0.0005  # the first epoch of a 2-epoch cycle (the rates do not change the time)


def reference_workers(device: torch.device, tiny: bool) -> tuple[int, ...]:
    """The DataLoader workers the original approach gets: its default (4) on a GPU machine; on a CPU,
    whose cores the training uses too, 0 and 2, the faster counts; under --tiny none (its figures
    mean nothing, and every pass of a loader with workers starts them again)."""
    if tiny:
        return (0,)
    return (4,) if device.type == "cuda" else (0, 2)


def our_configs(device: torch.device, compile_: bool, tiny: bool) -> dict[str, tuple[bool, bool]]:
    """name: (--amp, --compile), all with --channels_last: --amp, and fp32 too on a CPU (the faster
    counts), fp32 alone where the CPU emulates bfloat16 (``times_amp``)."""
    amp = times_amp(device, tiny)
    configs = {"amp_channels_last": (True, False)} if amp else {}
    if device.type == "cpu":
        configs["fp32_channels_last"] = (False, False)
    if compile_ and amp:
        configs["amp_channels_last_compile"] = (True, True)
    return configs


def _loaders(ours: data.Dataset, train: int, test: int, device) -> dict:
    subset = replace(ours, train=head(ours.train, train), test=head(ours.test, test))
    return data.make_loaders(subset, BATCH, "VGG", device=device, channels_last=True)


def _reference_loaders(sets: tuple, train: int, test: int, workers: int) -> dict:
    train_set, test_set = sets
    return {"train": reference_loader(train_set, train, workers, True, persistent=False),
            "test": reference_loader(test_set, test, workers, False, persistent=False)}


def warm_up_images(n: int) -> int:
    """The images of a warm-up pass before an epoch of ``n``: WARM_UP_BATCHES full batches (one in an
    epoch of under 8 batches) and a short one of the epoch's last batch's size, so that cuDNN has
    timed every shape the epoch meets (50,000 images: 2 x 128 + 80); no more than the epoch."""
    full = min(WARM_UP_BATCHES, max(1, n // BATCH // 4)) * BATCH
    return min(n, full + n % BATCH)


def _race_epochs(make_reference, make_ours, root, ours, images, test_images, device, compile_, tiny) -> dict:
    """Seconds of one epoch of each contender: ``make_reference()`` and ``make_ours(amp, compile)``
    return ``run(loaders)``; each is warmed up on a few batches of the same kind of loaders."""
    warm, warm_test = warm_up_images(images), warm_up_images(test_images)
    sets = reference_dataset(root, True, True), reference_dataset(root, False, False)  # read once
    contenders, warm_ups = {}, {}
    for w in reference_workers(device, tiny):
        run = make_reference()
        name = f"reference_workers{w}"
        contenders[name] = partial(run, _reference_loaders(sets, images, test_images, w))
        warm_ups[name] = partial(run, _reference_loaders(sets, warm, warm_test, 0))
    for config, (amp, compiled) in our_configs(device, compile_, tiny).items():
        run = make_ours(amp, compiled)
        contenders[f"ours_{config}"] = partial(run, _loaders(ours, images, test_images, device))
        warm_ups[f"ours_{config}"] = partial(run, _loaders(ours, warm, warm_test, device))
    best = race(contenders, 1, device, warm_ups)
    contenders.clear()
    warm_ups.clear()
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the next figure's networks start from an empty cache
    return best


def _summary(prefix: str, best: dict) -> tuple[dict, str]:
    fastest = min((k for k in best if k.startswith("ours")), key=best.get)
    reference = min((k for k in best if k.startswith("reference")), key=best.get)
    figures = {f"{prefix}_epoch_s_{k}": s for k, s in best.items()}
    figures.update({f"{prefix}_fastest_options": fastest.removeprefix("ours_"),
                    f"{prefix}_epoch_speedup": best[reference] / best[fastest]})
    return figures, fastest


def _ours_training(name: str, device, amp: bool, compiled: bool):
    model, opt = model_and_sgd(name, device, channels_last=True)
    forward = torch.compile(model) if compiled else model
    return lambda loaders: utils.train_epoch(forward, loaders["train"], opt, amp=amp)


def _reference_training(name: str, device):
    model, opt = model_and_sgd(name, device, reference=True)
    return lambda loaders: reference_train_epoch(model, loaders["train"], opt, device)


def step_flops(name: str, device) -> float:
    """FLOPs of one training step on BATCH images (forward and backward), counted in fp32."""
    model, opt = model_and_sgd(name, device)
    x = torch.randn(BATCH, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (BATCH,), device=device)
    return training_flops(lambda: utils.train_epoch(model, [(x, y)], opt))


def bench_epochs(root: str, ours: data.Dataset, images: int, device, peak_bf16: float, compile_: bool,
                 stand_in: str | None = None) -> dict:
    """A training epoch of ``images`` images of PreResNet164 and WideResNet28x10 (``stand_in`` for both
    under --tiny), ours against the original approach; the training's rate against the bf16 peak
    (``peak_bf16``, GFLOP/s)."""
    figures = {}
    for prefix, name in EPOCH_MODELS.items():
        name = stand_in or name
        best = _race_epochs(lambda: _reference_training(name, device),
                            lambda amp, compiled: _ours_training(name, device, amp, compiled),
                            root, ours, images, BATCH, device, compile_, stand_in is not None)
        summary, fastest = _summary(prefix, best)
        flops = step_flops(name, device) / BATCH * images  # FLOPs are linear in the batch: the short last one too
        achieved = flops / best[fastest] / 1e9  # GFLOP/s
        figures.update(summary)
        figures.update({f"{prefix}_model": name, f"{prefix}_epoch_images": images,
                        f"{prefix}_training_gflop_per_image": flops / images / 1e9,
                        f"{prefix}_training_gflops": achieved,
                        f"{prefix}_fraction_of_bf16_peak": achieved / peak_bf16})
    return figures


def bench_fge_swa(root: str, ours: data.Dataset, images: int, test_images: int, device, compile_: bool,
                  stand_in: str | None = None) -> dict:
    """An FGE epoch (fge.py's: training at a rate that changes every step, the test set's predictions
    added to the ensemble) and an SWA epoch with its evaluation (swa.py's at an evaluated epoch:
    training, the test set, the average's update, its BatchNorm statistics over the training set and
    its test set), of VGG16 (``stand_in`` under --tiny), ours against the original's fge.py and the
    swa code's train.py, which evaluate the test set twice in an FGE epoch (utils.test, then
    utils.predictions) and recompute BatchNorm with swa's bn_update."""
    name = stand_in or FGE_SWA_MODEL

    def rate(fraction: float) -> float:
        return ensembles.fge_learning_rate(0, fraction, FGE_CYCLE, FGE_LR_1, FGE_LR_2)

    def reference_fge():
        model, opt = model_and_sgd(name, device, reference=True)
        sums = {}  # the ensemble's sum of probabilities, per test set (the warm-up's is shorter)

        def run(loaders):
            reference_train_epoch(model, loaders["train"], opt, device, lr_fn=rate)
            model.eval()
            reference_evaluate(model, loaders["test"], device)
            probs = reference_predictions(model, loaders["test"], device)
            sums[len(probs)] = sums.get(len(probs), 0) + probs
        return run

    def ours_fge(amp, compiled):
        model, opt = model_and_sgd(name, device, channels_last=True)
        forward = torch.compile(model) if compiled else model
        ensemble = {}  # per test set, as the reference's

        def run(loaders):
            utils.train_epoch(forward, loaders["train"], opt, lr_fn=rate, amp=amp)
            _, probs, _ = utils.evaluate_with_predictions(forward, loaders["test"], amp=amp)
            ensemble.setdefault(len(probs), ensembles.ProbabilityEnsemble()).add(probs)
        return run

    def reference_swa():
        model, opt = model_and_sgd(name, device, reference=True)
        average, count = copy.deepcopy(model), [0]

        def run(loaders):
            reference_train_epoch(model, loaders["train"], opt, device)
            model.eval()
            reference_evaluate(model, loaders["test"], device)
            reference_moving_average(average, model, 1.0 / (count[0] + 1))
            count[0] += 1
            reference_bn_update(loaders["train"], average, device)
            average.eval()
            reference_evaluate(average, loaders["test"], device)
        return run

    def ours_swa(amp, compiled):
        model, opt = model_and_sgd(name, device, channels_last=True)
        forward = torch.compile(model) if compiled else model
        average = ensembles.averaged_model(model)

        def run(loaders):
            utils.train_epoch(forward, loaders["train"], opt, amp=amp)
            utils.evaluate(forward, loaders["test"], amp=amp)
            average.update_parameters(model)
            utils.update_bn(average.module, loaders["train"], amp=amp)
            utils.evaluate(average.module, loaders["test"], amp=amp)
        return run

    figures = {"fge_swa_model": name, "fge_swa_epoch_images": images, "fge_swa_test_images": test_images}
    for prefix, reference, ours_run in (("fge", reference_fge, ours_fge), ("swa", reference_swa, ours_swa)):
        best = _race_epochs(reference, ours_run, root, ours, images, test_images, device, compile_,
                            stand_in is not None)
        figures.update(_summary(prefix, best)[0])
    return figures
