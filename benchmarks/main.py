"""scripts/bench.py's command line: the sizes of each mode, the figures to run, their goals, the JSON."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import torch

import cli
import data
import ensembles
import runtime
import utils
from benchmarks import compute, curve_point, epochs, machine, matching, pipelines, processes
from benchmarks.reference import write_cifar

# images per timed pass: an augmented epoch (pipeline), a ConvFC training epoch, a curve
# point's training and test sets; VGG16's batch; repeats after the warm-up; matmul size.
SIZES = {
    # vgg_repeats: the overhead goals compare steps a few percent apart, on machines whose
    # neighbours move single timings by more: more rounds for paired_ratio's median
    # fashion_train, fashion_test: the Fashion-MNIST epoch's training and test images (the whole set: 60000, 10000)
    # epoch_images, epoch_test: the epoch figures' (benchmarks.epochs) on a CPU; on a GPU CIFAR's (CUDA_SIZES)
    "full": dict(pipeline=50000, train=5120, point_train=5120, point_test=2048, vgg_batch=128,
                 repeats=3, vgg_repeats=11, vgg_model="VGG16", matmul=4096, matching_model="VGG16", matching_repeats=3,
                 fashion_train=60000, fashion_test=10000, epoch_images=2048, epoch_test=1024, epoch_model=None),
    "quick": dict(pipeline=10240, train=2560, point_train=2560, point_test=1024, vgg_batch=128,
                  repeats=3, vgg_repeats=11, vgg_model="VGG16", matmul=2048, matching_model="VGG16", matching_repeats=1,
                  fashion_train=10240, fashion_test=2048, epoch_images=512, epoch_test=256, epoch_model=None),
    # a smoke run for the tests: every figure is written, none means anything (the vgg16_ figures
    # are ConvFC's there: five VGG16s for the simplex's step alone would take most of the run; the
    # epoch figures' networks an MLP's, whose backward in bf16 is quick where a CPU emulates bf16)
    "tiny": dict(pipeline=128, train=64, point_train=64, point_test=32, vgg_batch=4, repeats=1, vgg_repeats=1,
                 vgg_model="ConvFC",
                 matmul=64, matching_model="MLP", matching_repeats=1, fashion_train=128, fashion_test=64,
                 epoch_images=64, epoch_test=64, epoch_model="MLP"),
}
# on a GPU (not --tiny): CIFAR's whole epoch and test set, and a matmul large enough for the peak
CUDA_SIZES = dict(epoch_images=50000, epoch_test=10000, matmul=8192)
GOALS = {"pipeline_speedup": 20, "train_speedup_convfc": 3, "amp_speedup_vgg16": 1.3,
         "curve_overhead_vgg16": 1.15, "line_overhead_vgg16": 1.15, "simplex_overhead_vgg16": 1.15,
         "eval_curve_speedup": 2, "fraction_of_peak_vgg16": 0.6, "hvp_over_train_step": 2.5,
         "weight_matching_vgg16_s": 10, "swag_wrn28x10_peak_copies_of_weights": ensembles.swag.MAX_NUM_MODELS + 2,
         "fashion_epoch_speedup": 2, "preresnet164_epoch_speedup": 3, "wrn28x10_fraction_of_bf16_peak": 0.4}
CUDA_GOALS = {"curve_overhead_vgg16": 1.10, "line_overhead_vgg16": 1.10}  # the GPU's, where they differ
AT_MOST = {"hvp_over_train_step", "swag_wrn28x10_peak_copies_of_weights"}  # goals met at or below, besides the
# overheads and the seconds

STEPS = ("matmul", "pipeline", "train_convfc", "vgg16", "eval_curve", "data_parallel", "hvp", "weight_matching",
         "swag_memory", "fashion", "epochs", "fge_swa")  # in the order they run
GPU_STEPS = ("epochs", "fge_swa")  # by default only on a GPU (and under --tiny): see benchmarks.epochs
NEEDS_PEAK = ("vgg16", "epochs")  # their fractions of peak take the matmul's


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="scripts/bench.py", description="Speed on this machine, each figure a "
                                     "ratio of two timings taken side by side in one run.")
    parser.add_argument("--quick", action="store_true", help="smaller data and fewer repeats (< 5 min on 2 cores)")
    parser.add_argument("--out", required=True, help="JSON file for the figures")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--compile", action="store_true", help="also time ConvFC training, and the epoch "
                        "figures' networks, under torch.compile")
    parser.add_argument("--tiny", action="store_true", help="a smoke run in seconds, for the tests: "
                        "every figure is written, none means anything")
    parser.add_argument("--profile", action="store_true", help="also write torch.profiler's tables of a VGG16 "
                        "step, plain, on a curve and on a line, to OUT's name with -profile.txt (where the time goes)")
    parser.add_argument("--only", action="append", choices=STEPS, default=None, metavar="FIGURE",
                        help="only these figures (repeatable): " + ", ".join(STEPS) + " (default: all; "
                        + " and ".join(GPU_STEPS) + " only on a GPU or with --tiny)")
    return parser


def sizes(args, device: torch.device) -> dict:
    size = dict(SIZES["tiny" if args.tiny else "quick" if args.quick else "full"])
    if device.type == "cuda" and not args.tiny:
        size.update(CUDA_SIZES)
    return size


def chosen_steps(args, device: torch.device) -> list[str]:
    if args.only:  # the matmul's peak serves the fractions of peak
        return [s for s in STEPS if s in args.only or (s == "matmul" and set(args.only) & set(NEEDS_PEAK))]
    return [s for s in STEPS if s not in GPU_STEPS or device.type == "cuda" or args.tiny]


def bench_device(requested: str | None) -> torch.device:
    """--device, or cuda where there is one; a name torch does not know, or a GPU it does not see, is
    a UserError."""
    if requested is None:
        return utils.default_device()
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise runtime.UserError(f"--device {requested}: not a device torch knows (cpu, cuda, cuda:1, ...)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise runtime.UserError(f"--device {requested}: torch sees no CUDA device here")
    return device


def goals(device: torch.device) -> dict:
    return {**GOALS, **(CUDA_GOALS if device.type == "cuda" else {})}


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    device = bench_device(args.device)
    size = sizes(args, device)
    repeats = size["repeats"]
    names = chosen_steps(args, device)
    # as the scripts run (runtime.start_processes): the original approach's contenders gain from it too
    kept_memory = device.type == "cpu" and runtime.keep_freed_cpu_memory()
    if device.type == "cuda":  # the original's train.py sets it; our scripts too (runtime.start_processes)
        torch.backends.cudnn.benchmark = True

    started, busy_start, own_start = time.time(), machine.busy_cpu_seconds(), machine.own_cpu_seconds()
    figures = {**machine.machine(device), "quick": args.quick, "tiny": args.tiny,
               **{f"size_{k}": v for k, v in size.items()},
               "load_average_start": os.getloadavg()[0], "keeps_freed_cpu_memory": kept_memory}
    with tempfile.TemporaryDirectory() as root:
        epoch_figures = set(names) & set(GPU_STEPS)
        n_train = max(size["pipeline"], size["train"], size["point_train"], size["epoch_images"] if epoch_figures else 0)
        write_cifar(root, n_train, max(size["point_test"], size["epoch_test"] if epoch_figures else 0))
        ours = data.load_dataset("CIFAR10", root, use_test=True, download=False)
        steps = {
            "matmul": lambda: compute.bench_matmul(size["matmul"], device, repeats),
            "pipeline": lambda: pipelines.bench_pipeline(root, ours, size["pipeline"], device, repeats),
            "train_convfc": lambda: pipelines.bench_train_convfc(root, ours, size["train"], device, repeats,
                                                                 args.compile, args.tiny),
            "vgg16": lambda: compute.bench_vgg16(size["vgg_batch"], device, repeats, size["vgg_repeats"],
                                                 figures["matmul_gflops_fp32"], size["vgg_model"]),
            "eval_curve": lambda: curve_point.bench_eval_curve(root, ours, size["point_train"], size["point_test"],
                                                               device, repeats, args.tiny),
            "data_parallel": lambda: processes.bench_data_parallel(root, size["train"], repeats),
            "hvp": lambda: compute.bench_hvp(size["vgg_batch"], device, size["vgg_repeats"]),
            "weight_matching": lambda: matching.bench_weight_matching(size["matching_model"], device,
                                                                      size["matching_repeats"]),
            "swag_memory": lambda: processes.bench_swag_memory(device, args.tiny),
            "fashion": lambda: pipelines.bench_fashion_epoch(root, size["fashion_train"], size["fashion_test"],
                                                             device, repeats, args.tiny),
            "epochs": lambda: epochs.bench_epochs(root, ours, size["epoch_images"], device,
                                                  figures["matmul_gflops_bf16"], args.compile, size["epoch_model"]),
            "fge_swa": lambda: epochs.bench_fge_swa(root, ours, size["epoch_images"], size["epoch_test"], device,
                                                    args.compile, size["epoch_model"]),
        }
        for name in names:
            section = time.time()
            figures.update(steps[name]())
            print(f"{name:>15}: {time.time() - section:6.1f} s", file=sys.stderr, flush=True)
    figures["load_average_end"] = os.getloadavg()[0]
    figures["seconds"] = time.time() - started
    if busy_start is not None:  # the share of the machine that other programs took during the run
        others = machine.busy_cpu_seconds() - busy_start - (machine.own_cpu_seconds() - own_start)
        figures["other_programs_cpu_share"] = max(0.0, others) / (figures["seconds"] * os.cpu_count())
    figures["goals"] = {k: {"goal": g, "value": figures[k], "met": met(k, figures[k], g)}
                        for k, g in goals(device).items() if k in figures}

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(figures, f, indent=2)
        f.write("\n")
    if args.profile:
        path = os.path.splitext(args.out)[0] + "-profile.txt"
        with open(path, "w") as f:
            f.write(compute.profile_vgg16(size["vgg_batch"], device, size["vgg_model"]))
        print(f"profiles of a {size['vgg_model']} step: {path}")
    print_table(figures)


def print_table(figures: dict) -> None:
    isa = " ".join(figures["cpu_isa"]) or "none of " + " ".join(runtime.processes.ISA_FLAGS)
    print(f"on {figures['device']}; CPU {figures['cpu_model']}: {isa}; torch's CPU kernels: "
          f"{figures['torch_cpu_capability']}")
    for key, goal in figures["goals"].items():
        print(f"{key:>32}  {goal['value']:8.2f}  goal {'<=' if at_most(key) else '>='} "
              f"{goal['goal']:<5} {'met' if goal['met'] else 'MISSED'}")


def at_most(key: str) -> bool:
    """Overheads and seconds are goals to stay under; speed-ups and rates goals to reach."""
    return "overhead" in key or key.endswith("_s") or key in AT_MOST


def met(key: str, value: float, goal: float) -> bool:
    return value <= goal if at_most(key) else value >= goal
