"""The compute figures: the matmul peak, a VGG16 training step in each precision and on a curve, a line
and a simplex, and a Hessian-vector product."""
from __future__ import annotations

import torch
import torch.nn.functional as F

import models
import utils
from benchmarks.common import emulates_bf16, model_and_sgd
from benchmarks.timing import paired_ratio, race, race_rounds, sync, training_flops
from curves import CurveModel, SubspaceModel
from landscape import HessianOperator

SPRO_SAMPLES = 5  # points a SPRO step (loss-surface-simplexes' n_sample), in a simplex of 5 vertices


def bench_matmul(size: int, device: torch.device, repeats: int) -> dict:
    """Best of torch.mm (BLAS) and the same product as a 1x1 convolution (oneDNN on a CPU).

    On AMD CPUs MKL's sgemm runs at half the speed of oneDNN, which the convolutions
    use: the faster of the two is the fair peak for the fraction of peak.
    """
    # where the CPU emulates bfloat16 its products run at a few GFLOP/s: 15 rounds of 2048^3 took 15
    # minutes on the AVX2 EPYC. There the bf16 rate is measured once, at 512^2, and said to be emulated.
    emulated = emulates_bf16(device)
    figures = {"matmul_bf16_emulated": emulated}
    for dtype, tag in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        side, rounds = (min(size, 512), 1) if emulated and dtype == torch.bfloat16 else (size, 5 * repeats)
        a, b = (torch.randn(side, side, device=device, dtype=dtype) for _ in range(2))
        # (1, K, M, 1) in channels-last memory is an (M, K) matrix; the (N, K, 1, 1) kernel a (K, N) one
        x = torch.randn(1, side, side, 1, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(side, side, 1, 1, device=device, dtype=dtype)
        best = race({"mm": lambda: torch.mm(a, b), "conv": lambda: F.conv2d(x, w)}, rounds, device)
        for name, seconds in best.items():
            figures[f"matmul_gflops_{tag}_{name}"] = 2 * side ** 3 / seconds / 1e9
        figures[f"matmul_gflops_{tag}"] = max(figures[f"matmul_gflops_{tag}_{n}"] for n in best)
    return figures


def bench_vgg16(batch: int, device, repeats: int, overhead_repeats: int, peak_fp32: float, name: str = "VGG16") -> dict:
    """One VGG16 training step: fp32, --channels_last, --amp --channels_last, and on a curve, at a point
    of a learned line (train_subspace.py's step) and at SPRO_SAMPLES points of a simplex (simplex.py's).
    Two races: the precisions (``repeats`` rounds), and the steps whose overheads are goals against
    the plain step at the options one trains with on this device (``overhead_repeats`` rounds, for
    paired_ratio's median): --amp --channels_last, but fp32 --channels_last on a CPU that emulates
    bfloat16 (15x slower there: the ratio of two emulated steps would say nothing of the curve's or
    the line's own cost); ``vgg16_overhead_options`` says which."""
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    emulated = emulates_bf16(device)
    fast = "fp32_channels_last" if emulated else "amp_channels_last"
    listed = [("fp32", False, False, None), ("fp32_channels_last", False, True, None),
              ("amp_channels_last", True, True, None), ("curve_fp32", False, False, "curve")]
    listed += [(f"{kind}_{fast}", not emulated, True, kind) for kind in ("curve", "line", "simplex")]
    steps = {step: _vgg16_step(x, y, device, amp, channels_last, kind, name) for step, amp, channels_last, kind in listed}
    precisions = race_rounds({k: steps[k] for k in ("fp32", "fp32_channels_last", "amp_channels_last", "curve_fp32")},
                             repeats, device)
    overheads = race_rounds({k: steps[k] for k in (fast, f"curve_{fast}", f"line_{fast}", f"simplex_{fast}")},
                            overhead_repeats, device)
    best = {name: min(precisions.get(name, []) + overheads.get(name, [])) for name in steps}
    flops = training_flops(steps["fp32"])
    fp32 = min(best["fp32"], best["fp32_channels_last"])
    figures = {f"vgg16_step_s_{k}": s for k, s in best.items()}
    figures.update({
        "vgg16_training_gflop_per_step": flops / 1e9,
        "vgg16_training_gflops_fp32": flops / fp32 / 1e9,
        "amp_speedup_vgg16": best["fp32"] / best["amp_channels_last"],
        "amp_speedup_vgg16_vs_fp32_channels_last": best["fp32_channels_last"] / best["amp_channels_last"],
        "vgg16_overhead_options": fast,
        "curve_overhead_vgg16": paired_ratio(overheads, f"curve_{fast}", fast),
        "curve_overhead_vgg16_fp32": paired_ratio(precisions, "curve_fp32", "fp32"),
        "line_overhead_vgg16": paired_ratio(overheads, f"line_{fast}", fast),
        # per point: a step of k points against k plain steps
        "simplex_overhead_vgg16": paired_ratio(overheads, f"simplex_{fast}", fast, SPRO_SAMPLES),
        # the same from the best times, for comparison with earlier runs of this benchmark
        "curve_overhead_vgg16_of_best": best[f"curve_{fast}"] / best[fast],
        "line_overhead_vgg16_of_best": best[f"line_{fast}"] / best[fast],
        "simplex_overhead_vgg16_of_best": best[f"simplex_{fast}"] / (SPRO_SAMPLES * best[fast]),
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
    model, opt = model_and_sgd("ConvFC", device)
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



def profile_vgg16(batch: int, device, name: str = "VGG16") -> str:
    """torch.profiler's tables of one step of each of bench_vgg16's steps that the goals compare
    (plain fp32, plain and curve and line under --amp --channels_last), the ops by their own time:
    where a step's time goes on a new machine (ONEDNN_VERBOSE=1 in the environment adds oneDNN's
    kernel choices to the output, DNNL_VERBOSE=1 for older torch)."""
    from torch.profiler import ProfilerActivity, profile

    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    parts = []
    for step_name, amp, channels_last, kind in (("fp32", False, False, None), ("amp_channels_last", True, True, None),
                                                ("curve_amp_channels_last", True, True, "curve"),
                                                ("line_amp_channels_last", True, True, "line")):
        step = _vgg16_step(x, y, device, amp, channels_last, kind, name)
        step()  # warm-up: not profiled
        with profile(activities=activities) as prof:
            step()
            sync(device)
        parts.append(f"# {name} step, {step_name}, batch {batch}, {device}\n"
                     + prof.key_averages().table(sort_by=key, row_limit=15))
    return "\n\n".join(parts) + "\n"
