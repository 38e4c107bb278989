"""A curve point's evaluation (eval_curve.py's): the BatchNorm update and the train and test passes."""
from __future__ import annotations

from dataclasses import replace

import torch

import curves
import data
import models
import utils
from benchmarks.common import head, times_amp
from benchmarks.pipelines import WORKERS
from benchmarks.reference import BATCH, reference_dataset, reference_evaluate, reference_loader
from benchmarks.timing import race
from curves import CurveModel


def bench_eval_curve(root, ours: data.Dataset, train_images: int, test_images: int, device, repeats: int,
                     tiny: bool = False) -> dict:
    """One curve point of PreResNet20 (BatchNorm update, train and test evaluation):
    ``curves.evaluate_point``, as eval_curve.py runs it, against the original approach (a DataLoader of the augmented training images in
    order and the plain test images, batch 128, fp32, the weights at t recomputed for every batch,
    an ``.item()`` per batch)."""
    t = 0.5
    subset = replace(ours, train=head(ours.train, train_images), test=head(ours.test, test_images))
    train_set, test_set = reference_dataset(root, True, True), reference_dataset(root, False, False)

    def reference(workers):
        curve = _preresnet_curve(device, channels_last=False)
        train_dl = reference_loader(train_set, train_images, workers, False)
        test_dl = reference_loader(test_set, test_images, workers, False)

        def point():
            forward = lambda x: curve(x, t)  # noqa: E731
            utils.update_bn(curve, ((x.to(device), y) for x, y in train_dl), forward=forward)
            reference_evaluate(forward, train_dl, device)
            reference_evaluate(forward, test_dl, device)
        return point

    def ours_point(channels_last: bool, amp: bool):
        curve = _preresnet_curve(device, channels_last)
        loaders = data.make_loaders(subset, BATCH, "VGG", device=device, channels_last=channels_last)
        return lambda: curves.evaluate_point(curve, t, loaders["train_augmented"], loaders["test"],
                                                 wd=5e-4, amp=amp)

    amp = times_amp(device, tiny)  # fp32 where the CPU emulates bfloat16
    name = "ours_amp_channels_last" if amp else "ours_fp32_channels_last"
    contenders = {f"reference_workers{w}": reference(w) for w in WORKERS}
    contenders[name] = ours_point(True, amp)
    best = race(contenders, repeats, device)
    figures = {f"curve_point_s_{k}": s for k, s in best.items()}
    baseline = min(best[f"reference_workers{w}"] for w in WORKERS)
    figures["eval_curve_speedup"] = baseline / best[name]
    return figures


def _preresnet_curve(device, channels_last: bool) -> CurveModel:
    """A Bezier curve of 3 bends between two random PreResNet20s, the middle bend on the segment."""
    torch.manual_seed(0)
    curve = CurveModel(models.build_model("PreResNet20", 10), "Bezier", 3)
    curve.load_bend(2, models.build_model("PreResNet20", 10).state_dict())
    curve.init_linear()
    curve.to(device).eval()
    return curve.to(memory_format=torch.channels_last) if channels_last else curve

