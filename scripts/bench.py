"""Speed on this machine: each figure a ratio of two timings taken side by side in one run.

    python scripts/bench.py --quick --out runs/bench.json    # under 5 minutes on a 2-core CPU
    python scripts/bench.py --out runs/bench.json            # a CIFAR-10-sized epoch, more repeats
    python scripts/bench.py --only fashion --out runs/fashion-bench.json   # one figure

The baseline is the original code's approach: torchvision's CIFAR10 dataset with
PIL transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
Normalize) in a torch DataLoader (the best of 0 and 2 workers), fp32, a
``.item()`` per step. Ours: data.Loader (the batch pipeline on the device),
utils.train_epoch / update_bn / evaluate and the fastest options (``--amp
--channels_last``). The data are random CIFAR-shaped python batches the bench
writes itself: nothing is downloaded. The Fashion-MNIST epoch (the model of
scripts/fashion_tables.sh) reads Debian's dataset-fashion-mnist where it is installed (both sides
the same files), random idx files of its shape where not: torchvision's FashionMNIST with
RandomCrop(28, padding=2), RandomHorizontalFlip, ToTensor and Normalize against ours.

Timing: the contenders of a figure run interleaved (A, B, A, B, ...), so that a
change in the machine's load hits both; each is warmed up once (not timed),
bracketed by device synchronisation, and its best repeat is kept. The
overheads of a few percent (curve, line, simplex against a plain step) are the
median over rounds of the ratio within each round (``paired_ratio``).

Memory: the low-rank SWAG of WideResNet28x10 (``bench_swag_memory``), in copies of its weights.

The file is long (about 640 lines) because every figure is a function of its own, with its
contenders beside it: read one function at a time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import alignment  # noqa: E402
import data  # noqa: E402
import curves  # noqa: E402
import ensembles  # noqa: E402
import models  # noqa: E402
import runtime  # noqa: E402
import utils  # noqa: E402
from curves import CurveModel, SubspaceModel  # noqa: E402
from landscape import HessianOperator  # noqa: E402

# images per timed pass: an augmented epoch (pipeline), a ConvFC training epoch, a curve
# point's training and test sets; VGG16's batch; repeats after the warm-up; matmul size.
SIZES = {
    # vgg_repeats: the overhead goals compare steps a few percent apart, on machines whose
    # neighbours move single timings by more: more rounds for paired_ratio's median
    # fashion_train, fashion_test: the Fashion-MNIST epoch's training and test images (the whole set: 60000, 10000)
    "full": dict(pipeline=50000, train=5120, point_train=5120, point_test=2048, vgg_batch=128,
                 repeats=3, vgg_repeats=11, vgg_model="VGG16", matmul=4096, matching_model="VGG16", matching_repeats=3,
                 fashion_train=60000, fashion_test=10000),
    "quick": dict(pipeline=10240, train=2560, point_train=2560, point_test=1024, vgg_batch=128,
                  repeats=3, vgg_repeats=11, vgg_model="VGG16", matmul=2048, matching_model="VGG16", matching_repeats=1,
                  fashion_train=10240, fashion_test=2048),
    # a smoke run for the tests: every figure is written, none means anything (the vgg16_ figures
    # are ConvFC's there: five VGG16s for the simplex's step alone would take most of the run)
    "tiny": dict(pipeline=256, train=128, point_train=128, point_test=64, vgg_batch=4, repeats=1, vgg_repeats=1,
                 vgg_model="ConvFC",
                 matmul=64, matching_model="MLP", matching_repeats=1, fashion_train=256, fashion_test=128),
}
GOALS = {"pipeline_speedup": 20, "train_speedup_convfc": 3, "amp_speedup_vgg16": 1.3,
         "curve_overhead_vgg16": 1.15, "line_overhead_vgg16": 1.15, "simplex_overhead_vgg16": 1.15,
         "eval_curve_speedup": 2, "fraction_of_peak_vgg16": 0.6, "hvp_over_train_step": 2.5,
         "weight_matching_vgg16_s": 10, "swag_wrn28x10_peak_copies_of_weights": ensembles.swag.MAX_NUM_MODELS + 2,
         "fashion_epoch_speedup": 2}
AT_MOST = {"hvp_over_train_step", "swag_wrn28x10_peak_copies_of_weights"}  # goals met at or below, besides the
# overheads and the seconds
SPRO_SAMPLES = 5  # points a SPRO step (loss-surface-simplexes' n_sample), in a simplex of 5 vertices
BATCH, WORKERS = 128, (0, 2)
MEAN, STD = data.NORMALISATIONS["VGG"]
FASHION_MODEL = "MLP"  # scripts/fashion_tables.sh's model


# --------------------------------------------------------------------------- timing

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def race(contenders: dict, repeats: int, device: torch.device) -> dict:
    """Best seconds of each ``name: fn`` over ``repeats`` interleaved runs, after one warm-up each."""
    return {name: min(times) for name, times in race_rounds(contenders, repeats, device).items()}


def race_rounds(contenders: dict, repeats: int, device: torch.device) -> dict:
    """Seconds of each ``name: fn`` in each of ``repeats`` rounds (every contender once a round,
    in order), after one warm-up each."""
    for fn in contenders.values():
        fn()
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(times: dict, name: str, baseline: str, per: int = 1) -> float:
    """The median over rounds of ``name``'s time over ``per`` times ``baseline``'s in the same round.

    For overheads of a few percent: a shared machine's load drifts by more than that from one
    round to the next, and moves both runs of a round alike, so the ratio within a round
    cancels it, and the median ignores the rounds a burst hit. (The ratio of the best times
    compares two lucky runs taken at different moments.)
    """
    return statistics.median(t / (per * b) for t, b in zip(times[name], times[baseline]))


# --------------------------------------------------------------------------- the original approach

def write_cifar(root: str, n_train: int, n_test: int) -> str:
    """Random CIFAR-10-shaped python batches under ``root/cifar-10-batches-py``, where both sides read them."""
    data.write_random_cifar(os.path.join(root, "cifar-10-batches-py"), "CIFAR10", n_train, n_test)
    return root


class ReferenceCIFAR10(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR10 reading our files: its __getitem__ (PIL and transforms) is the baseline."""

    def _check_integrity(self):  # our random files have no official checksums
        return True

    def _load_meta(self):
        self.classes = [str(i) for i in range(10)]


def reference_dataset(root: str, train: bool, augment: bool) -> ReferenceCIFAR10:
    steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []
    transform = T.Compose(steps + [T.ToTensor(), T.Normalize(MEAN, STD)])
    return ReferenceCIFAR10(root, train=train, transform=transform, download=False)


def reference_loader(dataset, images: int, workers: int, shuffle: bool):
    # persistent workers: the baseline's worker start-up is not counted after the warm-up
    subset = torch.utils.data.Subset(dataset, range(images))
    return torch.utils.data.DataLoader(subset, batch_size=BATCH, shuffle=shuffle, num_workers=workers,
                                       persistent_workers=workers > 0)


def reference_train_epoch(model, loader, optimizer, device):
    """The original code's loop: fp32, and two ``.item()`` (host syncs) per step."""
    model.train()
    loss_sum = correct = 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        output = model(x)
        loss = F.cross_entropy(output, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(x)
        correct += (output.argmax(1) == y).sum().item()
    return loss_sum, correct


@torch.no_grad()
def reference_evaluate(forward, loader, device):
    loss_sum = correct = 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        output = forward(x)
        loss_sum += F.cross_entropy(output, y).item() * len(x)
        correct += (output.argmax(1) == y).sum().item()
    return loss_sum, correct


# --------------------------------------------------------------------------- figures

def bench_matmul(size: int, device: torch.device, repeats: int) -> dict:
    """Best of torch.mm (BLAS) and the same product as a 1x1 convolution (oneDNN on a CPU).

    On AMD CPUs MKL's sgemm runs at half the speed of oneDNN, which the convolutions
    use: the faster of the two is the fair peak for the fraction of peak.
    """
    figures = {}
    for dtype, tag in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
        # (1, K, M, 1) in channels-last memory is an (M, K) matrix; the (N, K, 1, 1) kernel a (K, N) one
        x = torch.randn(1, size, size, 1, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(size, size, 1, 1, device=device, dtype=dtype)
        best = race({"mm": lambda: torch.mm(a, b), "conv": lambda: F.conv2d(x, w)}, 5 * repeats, device)
        for name, seconds in best.items():
            figures[f"matmul_gflops_{tag}_{name}"] = 2 * size ** 3 / seconds / 1e9
        figures[f"matmul_gflops_{tag}"] = max(figures[f"matmul_gflops_{tag}_{n}"] for n in best)
    return figures


def bench_pipeline(root, ours: data.Dataset, images: int, device, repeats: int) -> dict:
    """Images per second of an augmented training epoch: our Loader against the DataLoader."""
    reference = reference_dataset(root, train=True, augment=True)
    loader = data.make_loaders(replace(ours, train=_head(ours.train, images)), BATCH, "VGG", device=device)["train"]

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


def bench_train_convfc(root, ours: data.Dataset, images: int, device, repeats: int, compile_: bool) -> dict:
    """Training images per second, ConvFC: train_epoch on our Loader against the original loop."""
    reference = reference_dataset(root, train=True, augment=True)
    subset = replace(ours, train=_head(ours.train, images))
    contenders = {}
    for w in WORKERS:
        model, opt = _model_and_sgd("ConvFC", device, reference=True)
        dl = reference_loader(reference, images, w, True)
        contenders[f"reference_workers{w}"] = lambda m=model, o=opt, dl=dl: reference_train_epoch(m, dl, o, device)
    configs = {"fp32": (False, False, False), "amp_channels_last": (True, True, False)}
    if compile_:
        configs["amp_channels_last_compile"] = (True, True, True)
    for name, (amp, channels_last, compiled) in configs.items():
        model, opt = _model_and_sgd("ConvFC", device, channels_last)
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


def bench_vgg16(batch: int, device, repeats: int, overhead_repeats: int, peak_fp32: float, name: str = "VGG16") -> dict:
    """One VGG16 training step: fp32, --channels_last, --amp --channels_last, and on a curve, at a point
    of a learned line (train_subspace.py's step) and at SPRO_SAMPLES points of a simplex (simplex.py's).
    Two races: the precisions (``repeats`` rounds), and the steps whose overheads are goals against
    the plain --amp --channels_last step (``overhead_repeats`` rounds, for paired_ratio's median)."""
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    steps = {step: _vgg16_step(x, y, device, amp, channels_last, kind, name) for step, amp, channels_last, kind in (
        ("fp32", False, False, None), ("fp32_channels_last", False, True, None), ("amp_channels_last", True, True, None),
        ("curve_fp32", False, False, "curve"), ("curve_amp_channels_last", True, True, "curve"),
        ("line_amp_channels_last", True, True, "line"), ("simplex_amp_channels_last", True, True, "simplex"))}
    precisions = race_rounds({k: steps[k] for k in ("fp32", "fp32_channels_last", "amp_channels_last", "curve_fp32")},
                             repeats, device)
    overheads = race_rounds({k: steps[k] for k in ("amp_channels_last", "curve_amp_channels_last",
                                                   "line_amp_channels_last", "simplex_amp_channels_last")},
                            overhead_repeats, device)
    best = {name: min(precisions.get(name, []) + overheads.get(name, [])) for name in steps}
    flops = _training_flops(steps["fp32"])
    fp32 = min(best["fp32"], best["fp32_channels_last"])
    figures = {f"vgg16_step_s_{k}": s for k, s in best.items()}
    figures.update({
        "vgg16_training_gflop_per_step": flops / 1e9,
        "vgg16_training_gflops_fp32": flops / fp32 / 1e9,
        "amp_speedup_vgg16": best["fp32"] / best["amp_channels_last"],
        "amp_speedup_vgg16_vs_fp32_channels_last": best["fp32_channels_last"] / best["amp_channels_last"],
        "curve_overhead_vgg16": paired_ratio(overheads, "curve_amp_channels_last", "amp_channels_last"),
        "curve_overhead_vgg16_fp32": paired_ratio(precisions, "curve_fp32", "fp32"),
        "line_overhead_vgg16": paired_ratio(overheads, "line_amp_channels_last", "amp_channels_last"),
        # per point: a step of k points against k plain steps
        "simplex_overhead_vgg16": paired_ratio(overheads, "simplex_amp_channels_last", "amp_channels_last",
                                               SPRO_SAMPLES),
        # the same from the best times, for comparison with earlier runs of this benchmark
        "curve_overhead_vgg16_of_best": best["curve_amp_channels_last"] / best["amp_channels_last"],
        "line_overhead_vgg16_of_best": best["line_amp_channels_last"] / best["amp_channels_last"],
        "simplex_overhead_vgg16_of_best": best["simplex_amp_channels_last"] / (SPRO_SAMPLES * best["amp_channels_last"]),
        "fraction_of_peak_vgg16": flops / fp32 / 1e9 / peak_fp32,
    })
    return figures


def _vgg16_step(x, y, device, amp, channels_last, kind, name="VGG16"):
    torch.manual_seed(0)
    model = models.build_model(name, 10).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    regularizer, wd, samples = None, 5e-4, 1
    if kind == "curve":  # 3 bends, weight decay as the curve's L2 term (train_curve.py's step)
        model = CurveModel(model, "Bezier", 3).to(device)
        regularizer, wd = model.regularizer(wd), 0.0
    elif kind == "line":  # 2 free vertices, cos^2 of the pair, SGD's weight decay (train_subspace.py's step)
        model = SubspaceModel(model, "PolyChain", 2, seed=0).to(device)
        regularizer = model.regularizer(beta=1.0)
    elif kind == "simplex":  # 4 frozen vertices and a free one, the volume term (simplex.py's step)
        model = SubspaceModel(model, "simplex", 4, fixed=range(4), seed=0)
        model.init_random(lambda: models.build_model(name, 10))
        model.add_vertex()
        model.to(device)
        regularizer, samples = model.regularizer(lam=1e-8), SPRO_SAMPLES
    opt = utils.sgd(model.parameters(), 1e-3, 0.9, wd)
    return lambda: utils.train_epoch(model, [(x, y)], opt, regularizer=regularizer, amp=amp, samples=samples)


def bench_hvp(batch: int, device, repeats: int) -> dict:
    """A Hessian-vector product of ConvFC on a batch (hessian.py's, landscape.HessianOperator) over a
    training step on the same batch (fp32, the scripts' fused SGD), paired per round (``paired_ratio``).
    ``hvp_over_train_step``: the product as the power iteration and the trace take it, through the
    gradient graph kept from the first (the default); ``_recomputed``: the graph rebuilt each time
    (``--recompute``). The product is float32 and needs no --amp; neither side uses it."""
    torch.manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    model, opt = _model_and_sgd("ConvFC", device)
    kept = HessianOperator(model, [(x, y)])
    rebuilt = HessianOperator(model, [(x, y)], retain_graphs=False)
    v = torch.randn(kept.numel, device=device)
    train = lambda: utils.train_epoch(model, [(x, y)], opt)  # noqa: E731
    rounds = race_rounds({"train_step": train, "hvp": lambda: kept(v), "hvp_recomputed": lambda: rebuilt(v)},
                         repeats, device)
    figures = {f"hvp_convfc_s_{k}": min(t) for k, t in rounds.items()}
    figures["hvp_over_train_step"] = paired_ratio(rounds, "hvp", "train_step")
    figures["hvp_over_train_step_recomputed"] = paired_ratio(rounds, "hvp_recomputed", "train_step")
    return figures


def _training_flops(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:  # forward and backward matmuls and convolutions
        step()
    return float(counter.get_total_flops())


def bench_weight_matching(name: str, device, repeats: int) -> dict:
    """Git Re-Basin's weight matching of two random networks (align.py --method weights): seconds of
    the coordinate descent until a sweep gains nothing (best of ``repeats``; on a CPU also with one
    thread, which a machine shared with other programs favours), and of finding the groups."""
    torch.manual_seed(0)
    a, b = (models.build_model(name, 10).to(device) for _ in range(2))
    sync(device)
    start = time.perf_counter()
    groups = alignment.find_groups(a, torch.zeros(1, 3, 32, 32, device=device))
    figures = {"weight_matching_vgg16_groups_s": time.perf_counter() - start, "weight_matching_model": name}
    params_a, params_b = alignment.parameters(a), alignment.parameters(b)
    threads = torch.get_num_threads()
    for suffix, count in [("", threads)] + ([("_1_thread", 1)] if device.type == "cpu" else []):
        torch.set_num_threads(count)
        try:
            best = float("inf")
            for _ in range(repeats):  # no warm-up: nothing is compiled, and a run takes seconds
                sync(device)
                start = time.perf_counter()
                sweeps = alignment.weight_matching(groups, params_a, params_b, seed=0).sweeps
                sync(device)
                best = min(best, time.perf_counter() - start)
        finally:
            torch.set_num_threads(threads)
        figures[f"weight_matching_vgg16_s{suffix}"] = best
    figures["weight_matching_vgg16_sweeps"] = float(sweeps)
    return figures


def bench_eval_curve(root, ours: data.Dataset, train_images: int, test_images: int, device, repeats: int) -> dict:
    """One curve point of PreResNet20 (BatchNorm update, train and test evaluation):
    ``curves.evaluate_point``, as eval_curve.py runs it, against the original approach (a DataLoader of the augmented training images in
    order and the plain test images, batch 128, fp32, the weights at t recomputed for every batch,
    an ``.item()`` per batch)."""
    t = 0.5
    subset = replace(ours, train=_head(ours.train, train_images), test=_head(ours.test, test_images))
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

    contenders = {f"reference_workers{w}": reference(w) for w in WORKERS}
    contenders["ours_amp_channels_last"] = ours_point(True, True)
    best = race(contenders, repeats, device)
    figures = {f"curve_point_s_{k}": s for k, s in best.items()}
    baseline = min(best[f"reference_workers{w}"] for w in WORKERS)
    figures["eval_curve_speedup"] = baseline / best["ours_amp_channels_last"]
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


def bench_fashion_epoch(root: str, train_images: int, test_images: int, device, repeats: int) -> dict:
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
        model, opt = _model_and_sgd(FASHION_MODEL, device, reference=True, shape=(1, 28))
        train_dl = reference_loader(train_set, train_images, w, True)
        test_dl = reference_loader(test_set, test_images, w, False)

        def reference(m=model, o=opt, train_dl=train_dl, test_dl=test_dl):
            reference_train_epoch(m, train_dl, o, device)
            m.eval()
            reference_evaluate(m, test_dl, device)
        contenders[f"reference_workers{w}" + ("_one_thread" if threads else "")] = _with_threads(reference, threads)
    ours = data.load_dataset("FashionMNIST", raw, use_test=True, download=False)
    configs = {"fp32_channels_last": (None, None), "amp_channels_last": (torch.bfloat16, None)}
    if device.type == "cpu":
        configs["fp32_channels_last_one_thread"] = (None, 1)
    for name, (amp, threads) in configs.items():
        model, opt = _model_and_sgd(FASHION_MODEL, device, True, shape=(1, 28))
        loaders = data.make_loaders(ours, BATCH, "VGG", device=device, channels_last=True)

        def epoch(m=model, o=opt, loaders=loaders, amp=amp):
            utils.train_epoch(m, loaders["train"], o, amp=amp)
            utils.evaluate(m, loaders["test"], amp=amp)
        contenders[f"ours_{name}"] = _with_threads(epoch, threads)
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


def _with_threads(fn, threads: int | None):
    """``fn`` run with ``threads`` torch threads (None: as many as now)."""
    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(threads or before)
        try:
            fn()
        finally:
            torch.set_num_threads(before)
    return run


def bench_data_parallel(root: str, images: int, repeats: int) -> dict:
    """ConvFC training on the CPU at the same global batch of 128: one process with every core's
    threads, against two gloo processes (torch.distributed, DistributedDataParallel) with half the
    threads each and 64 images of every batch each. A report, not a goal: on two cores the
    processes share the cores one process would use, and only the gradient exchange differs."""
    import torch.multiprocessing as mp

    figures = {}
    for world in (1, 2):
        context = mp.get_context("spawn")
        results = context.SimpleQueue()
        port = _free_port()
        mp.spawn(_data_parallel_worker, args=(world, root, images, repeats, port, results), nprocs=world)
        figures[f"data_parallel_images_per_s_{world}_process"] = images / results.get()
    figures["data_parallel_speedup_2_processes"] = (figures["data_parallel_images_per_s_2_process"]
                                                    / figures["data_parallel_images_per_s_1_process"])
    return figures


def _data_parallel_worker(rank: int, world: int, root: str, images: int, repeats: int, port: int, results) -> None:
    import torch.distributed as dist

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    runtime.keep_freed_cpu_memory()  # as every script's process on a CPU
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    dataset = data.load_dataset("CIFAR10", root, use_test=True, download=False)
    dataset = replace(dataset, train=_head(dataset.train, images))
    loader = data.make_loaders(dataset, BATCH, "VGG", rank=rank, world_size=world)["train"]
    model, optimizer = _model_and_sgd("ConvFC", torch.device("cpu"))
    forward = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    best = float("inf")
    for i in range(repeats + 1):  # the first is the warm-up
        started = time.perf_counter()
        utils.train_epoch(forward, loader, optimizer)
        if i:
            best = min(best, time.perf_counter() - started)
    if rank == 0:
        results.put(best)
    if world > 1:
        dist.destroy_process_group()


def bench_swag_memory(device: torch.device, tiny: bool) -> dict:
    """The bytes of the low-rank SWAG (K = 20) of WideResNet28x10 (36.5M parameters) against the
    weights' own: the collector's tensors, and what its process allocates while it is made and
    collects K + 1 snapshots of the built model (no training; the last one reuses the oldest
    row), then while it draws one network: the peak resident memory's growth on the CPU (in a
    fresh process, whose peak is then SWAG's), the peak of allocated memory on a GPU.
    Goal: at most K + 2 copies of the weights while collecting. Copies are given to 4 decimals (a
    ten-thousandth of WideResNet28x10's weights is 14.6 kB: the allocator's bookkeeping of the rows,
    not tensors); ``swag_wrn28x10_peak_extra_bytes`` is the growth beyond the tensors' bytes, exactly.
    ``tiny``: an MLP, for the tests."""
    import torch.multiprocessing as mp

    name, k = ("MLP" if tiny else "WideResNet28x10"), ensembles.swag.MAX_NUM_MODELS
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    worker = context.Process(target=_swag_memory_worker, args=(name, k, str(device), results))
    worker.start()
    figures = results.get()
    worker.join()
    weights, key = figures.pop("weights_bytes"), "swag_wrn28x10_"
    figures.update({key + "model": name, key + "max_num_models": k, key + "weights_bytes": weights,
                    key + "peak_extra_bytes": figures[key + "peak_bytes"] - figures[key + "bytes"],
                    key + "copies_of_weights": round(figures[key + "bytes"] / weights, 4),
                    key + "peak_copies_of_weights": round(figures[key + "peak_bytes"] / weights, 4),
                    key + "sample_peak_copies_of_weights": round(figures[key + "sample_peak_bytes"] / weights, 4)})
    return figures


def _swag_memory_worker(name: str, k: int, device: str, results) -> None:
    import resource

    device = torch.device(device)
    torch.manual_seed(0)
    model = models.build_model(name, 10).to(device)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    page = os.sysconf("SC_PAGE_SIZE")

    def resident() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    warm = torch.nn.Linear(4, 4).to(device)  # the kernels' code paged in before measuring: not SWAG's memory
    collector = ensembles.SWAG(warm, 2)
    for _ in range(3):
        collector.collect(warm)
    collector.sample(0.5)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = resident()
    def peak() -> int:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) - before
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before  # ru_maxrss: KiB

    swag = ensembles.SWAG(model, k, cov_mat=True)
    with torch.no_grad():
        for step in range(k + 1):
            for p in model.parameters():
                p.add_(1e-3 * (step + 1))  # another point of the trajectory, in place
            swag.collect(model)
    collecting = peak()
    swag.sample(0.5, generator=torch.Generator().manual_seed(0))
    results.put({"weights_bytes": float(weights), "swag_wrn28x10_bytes": float(swag.nbytes()),
                 "swag_wrn28x10_peak_bytes": float(collecting), "swag_wrn28x10_sample_peak_bytes": float(peak())})


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _preresnet_curve(device, channels_last: bool) -> CurveModel:
    """A Bezier curve of 3 bends between two random PreResNet20s, the middle bend on the segment."""
    torch.manual_seed(0)
    curve = CurveModel(models.build_model("PreResNet20", 10), "Bezier", 3)
    curve.load_bend(2, models.build_model("PreResNet20", 10).state_dict())
    curve.init_linear()
    curve.to(device).eval()
    return curve.to(memory_format=torch.channels_last) if channels_last else curve


def _head(images: data.ImageSet, n: int) -> data.ImageSet:
    return data.ImageSet(images.images[:n], images.labels[:n])


def _model_and_sgd(name: str, device, channels_last: bool = False, reference: bool = False, shape=(3, 32)):
    """A model (for images of ``shape``: channels, side) and its SGD: the scripts' (fused where torch
    has it), or the original's ``torch.optim.SGD``."""
    torch.manual_seed(0)
    model = models.build_model(name, 10, *shape).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    make = torch.optim.SGD if reference else utils.sgd
    return model, make(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)


# --------------------------------------------------------------------------- main

# the CPU features oneDNN's kernels choose by: AVX2, AVX-512, its bfloat16 dot products, AMX's tiles
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_info() -> dict:
    """The CPU's model and which of ISA_FLAGS it has (/proc/cpuinfo's flags, as a VM exposes them),
    and the vector ISA torch's own CPU kernels dispatch to."""
    model, flags = None, set()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:  # the first processor's lines: all of a machine's are alike
            for line in f:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key == "model name" and model is None:
                    model = value
                elif key == "flags" and not flags:
                    flags = set(value.split())
    model = model or platform.processor() or platform.machine()
    return {"cpu_model": model, "cpu_isa": [f for f in ISA_FLAGS if f in flags],
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def machine(device: torch.device) -> dict:
    cpu = cpu_info()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu["cpu_model"]
    return {"device": name, "device_type": device.type, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(), **cpu}


def busy_cpu_seconds() -> float | None:
    """CPU seconds spent by everything on the machine so far (Linux), to tell how busy it was."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


STEPS = ("matmul", "pipeline", "train_convfc", "vgg16", "eval_curve", "data_parallel", "hvp", "weight_matching",
         "swag_memory", "fashion")  # in the order they run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller data and fewer repeats (< 5 min on 2 cores)")
    parser.add_argument("--out", required=True, help="JSON file for the figures")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--compile", action="store_true", help="also time ConvFC training under torch.compile")
    parser.add_argument("--tiny", action="store_true", help="a smoke run in seconds, for the tests: "
                        "every figure is written, none means anything")
    parser.add_argument("--only", action="append", choices=STEPS, default=None, metavar="FIGURE",
                        help="only these figures (repeatable): " + ", ".join(STEPS) + " (default: all)")
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else utils.default_device()
    size = SIZES["tiny" if args.tiny else "quick" if args.quick else "full"]
    repeats = size["repeats"]
    # as the scripts run (runtime.start_processes): the original approach's contenders gain from it too
    kept_memory = device.type == "cpu" and runtime.keep_freed_cpu_memory()

    started, busy_start, own_start = time.time(), busy_cpu_seconds(), own_cpu_seconds()
    figures = {**machine(device), "quick": args.quick, "tiny": args.tiny, **{f"size_{k}": v for k, v in size.items()},
               "load_average_start": os.getloadavg()[0], "keeps_freed_cpu_memory": kept_memory}
    with tempfile.TemporaryDirectory() as root:
        write_cifar(root, max(size["pipeline"], size["train"], size["point_train"]), size["point_test"])
        ours = data.load_dataset("CIFAR10", root, use_test=True, download=False)
        steps = [("matmul", lambda: bench_matmul(size["matmul"], device, repeats)),
                 ("pipeline", lambda: bench_pipeline(root, ours, size["pipeline"], device, repeats)),
                 ("train_convfc", lambda: bench_train_convfc(root, ours, size["train"], device, repeats,
                                                             args.compile)),
                 ("vgg16", lambda: bench_vgg16(size["vgg_batch"], device, repeats, size["vgg_repeats"],
                                                       figures["matmul_gflops_fp32"], size["vgg_model"])),
                 ("eval_curve", lambda: bench_eval_curve(root, ours, size["point_train"], size["point_test"],
                                                         device, repeats)),
                 ("data_parallel", lambda: bench_data_parallel(root, size["train"], repeats)),
                 ("hvp", lambda: bench_hvp(size["vgg_batch"], device, size["vgg_repeats"])),
                 ("weight_matching", lambda: bench_weight_matching(size["matching_model"], device,
                                                                   size["matching_repeats"])),
                 ("swag_memory", lambda: bench_swag_memory(device, args.tiny)),
                 ("fashion", lambda: bench_fashion_epoch(root, size["fashion_train"], size["fashion_test"], device,
                                                         repeats))]
        if args.only:  # the matmul's peak serves vgg16's fraction of peak
            steps = [(n, s) for n, s in steps if n in args.only or (n == "matmul" and "vgg16" in args.only)]
        for name, step in steps:
            section = time.time()
            figures.update(step())
            print(f"{name:>13}: {time.time() - section:6.1f} s", file=sys.stderr, flush=True)
    figures["load_average_end"] = os.getloadavg()[0]
    figures["seconds"] = time.time() - started
    if busy_start is not None:  # the share of the machine that other programs took during the run
        others = busy_cpu_seconds() - busy_start - (own_cpu_seconds() - own_start)
        figures["other_programs_cpu_share"] = max(0.0, others) / (figures["seconds"] * os.cpu_count())
    figures["goals"] = {k: {"goal": g, "value": figures[k], "met": _met(k, figures[k], g)} for k, g in GOALS.items()
                        if k in figures}

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(figures, f, indent=2)
        f.write("\n")
    isa = " ".join(figures["cpu_isa"]) or "none of " + " ".join(ISA_FLAGS)
    print(f"on {figures['device']}; CPU {figures['cpu_model']}: {isa}; torch's CPU kernels: "
          f"{figures['torch_cpu_capability']}")
    for key, goal in figures["goals"].items():
        print(f"{key:>24}  {goal['value']:8.2f}  goal {'<=' if _at_most(key) else '>='} "
              f"{goal['goal']:<5} {'met' if goal['met'] else 'MISSED'}")


def _at_most(key: str) -> bool:
    """Overheads and seconds are goals to stay under; speed-ups and rates goals to reach."""
    return "overhead" in key or key.endswith("_s") or key in AT_MOST


def _met(key: str, value: float, goal: float) -> bool:
    return value <= goal if _at_most(key) else value >= goal


if __name__ == "__main__":
    main()
