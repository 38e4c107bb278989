"""Every script a few steps on a device, in each precision, then the GPU tests and the bench: the
driver of scripts/gpu_check.sh (see there for the command line).

    python scripts/gpu_check.py --device cuda --out runs/gpu_check
    python scripts/gpu_check.py --device cpu --tiny --modes fp32 --out /tmp/check

(a) It writes CIFAR-10 stand-in files (random images in the python-batch format) under OUT/data
and runs each script on them, in this process (torch imported once, as tests/test_readme.py's
tour does): ``cli.run(module.main, argv)`` with its output kept in OUT/logs/MODE-NAME.log. One
line per check: ``ok   train.py  bf16  3.2 s``, or ``FAIL train.py  fp16: <first error line>``; a
check whose input another check failed to write says ``skip ... needs ...``. Modes: fp32 (no
flag), bf16 (``--amp --amp_dtype=bfloat16``), fp16 (``--amp --amp_dtype=float16``: the gradient
scaler), compile (``--compile``); a script without the mode's flags says ``skipped: no --compile``,
one that refuses them (hessian.py computes in float32, eagerly) says ``skipped:`` and its reason.
(b) ``python -m pytest -q -m gpu tests/test_gpu.py`` (skipped, with the reason, without CUDA).
(c) ``scripts/bench.py --device DEVICE`` (``--quick``; ``--tiny`` under --tiny) writing
OUT/bench.json; its figures table is printed last. Exit status 1 when a check failed, 2 (one
``error:`` line) for a bad command line.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import shutil
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import cli  # noqa: E402
from runtime.errors import UserError  # noqa: E402

MODES = {"fp32": [], "bf16": ["--amp", "--amp_dtype=bfloat16"], "fp16": ["--amp", "--amp_dtype=float16"],
         "compile": ["--compile"]}
# a GPU's check: a few hundred images and a network with BatchNorm (its update on the device);
# --tiny: fewer images and ConvFC, so that a 2-core CPU runs the whole list in a minute or two
SIZES = {"full": dict(train=500, test=200, model="ResNet20", hessian_images=128),
         "tiny": dict(train=160, test=64, model="ConvFC", hessian_images=32)}
BENCH_FIGURES = ("matmul", "pipeline", "train_convfc", "vgg16", "eval_curve", "data_parallel", "hvp",
                 "weight_matching", "swag_memory", "fashion", "epochs", "fge_swa")  # bench.py's --only (a test
# keeps them equal; benchmarks.main imports torch, which --help and a usage error do without)
MARKER = "gpu_check.txt"  # in OUT: the folder is this script's, so its runs may be removed


def checks(data_path: str, runs: str, model: str, hessian_images: int) -> list[tuple]:
    """(name, module, arguments, names of the checks whose files it reads), in the order they run."""
    cifar = ["--dataset=CIFAR10", "--use_test", "--batch_size=32"]
    net1, net2 = f"{runs}/net1/checkpoint-1.pt", f"{runs}/net2/checkpoint-1.pt"
    listed = [
        ("train.py", "train", [f"--dir={runs}/net1", *cifar, f"--model={model}", "--epochs=1", "--seed=1"], []),
        ("train.py seed 2", "train", [f"--dir={runs}/net2", *cifar, f"--model={model}", "--epochs=1", "--seed=2"], []),
        ("train.py --curve", "train", [f"--dir={runs}/curve", "--curve=Bezier", "--num_bends=3", f"--init_start={net1}",
                                       f"--init_end={net2}", "--fix_start", "--fix_end", "--epochs=1", "--batch_size=32"],
         ["train.py", "train.py seed 2"]),
        ("eval_curve.py", "eval_curve", [f"--dir={runs}/curve-eval", f"--ckpt={runs}/curve", "--num_points=3"],
         ["train.py --curve"]),
        ("fge.py", "fge", [f"--dir={runs}/fge", f"--ckpt={net1}", "--epochs=2", "--cycle=2", "--lr_1=0.01",
                           "--lr_2=0.001", "--batch_size=32"], ["train.py"]),
        ("swa.py --swag", "swa", [f"--dir={runs}/swa", *cifar, f"--model={model}", "--epochs=2", "--lr_init=0.01",
                                  "--swa", "--swa_start=1", "--swa_lr=0.005", "--swag"], []),
        ("swag.py", "swag", [f"--dir={runs}/swag", f"--ckpt={runs}/swa", "--num_samples=2"], ["swa.py --swag"]),
        ("eval_ensemble.py", "eval_ensemble", [f"--dir={runs}/ensemble", "--ckpt", net1, net2],
         ["train.py", "train.py seed 2"]),
        ("plane.py", "plane", [f"--dir={runs}/plane", f"--ckpt={runs}/curve", "--grid_points=3", "--curve_points=3"],
         ["train.py --curve"]),
        ("train_subspace.py", "train_subspace", [f"--dir={runs}/line", *cifar, f"--model={model}", "--shape=line",
                                                 "--epochs=1", "--warmup_epochs=0", "--num_points=3"], []),
        ("simplex.py", "simplex", [f"--dir={runs}/simplex", f"--ckpt={net1}", "--num_vertices=2",
                                   "--epochs_per_vertex=1", "--num_samples=2", "--num_test_samples=2",
                                   "--batch_size=32"], ["train.py"]),
        ("align.py", "align", [f"--dir={runs}/aligned", f"--ckpt_a={net1}", f"--ckpt_b={net2}",
                               "--method=activations", f"--num_images={hessian_images}"],
         ["train.py", "train.py seed 2"]),
        ("rays.py", "rays", [f"--dir={runs}/rays", "--ckpt", net1, "--num_directions=2", "--num_points=3",
                             "--max_distance=10"], ["train.py"]),
        ("hessian.py", "hessian", [f"--dir={runs}/hessian", f"--ckpt={net1}", f"--num_images={hessian_images}",
                                   "--top_k=1", "--max_iter=5", "--trace", "--trace_max_iter=5"], ["train.py"]),
        ("surface.py", "surface", [f"--dir={runs}/surface", f"--ckpt={net1}", "--x=-1:1:3"], ["train.py"]),
    ]
    # a checkpoint names its dataset, not where its files are: every script is told
    return [(name, module, [*argv, f"--data_path={data_path}"], needs) for name, module, argv, needs in listed]


def script_of(name: str) -> str:
    """The file a check is named by in --scripts: its script's, train_curve.py for train.py --curve."""
    return "train_curve.py" if name == "train.py --curve" else name.split()[0]


def selected(text: str) -> set[str]:
    """The checks of the scripts named in ``text``, with the checks that write what they read."""
    listed = {name: needs for name, _, _, needs in checks("", "", "", 0)}
    known = sorted({script_of(name) for name in listed})
    wanted = text.split()
    if not wanted or any(w not in known for w in wanted):
        raise UserError(f"--scripts: {text!r}: choose among {' '.join(known)}")
    chosen = {name for name in listed if script_of(name) in wanted}
    while more := {n for name in chosen for n in listed[name]} - chosen:
        chosen |= more
    return chosen


def parse_modes(text: str) -> list[str]:
    modes = text.split()
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise UserError(f"--modes: {' '.join(unknown) or 'none given'}: choose among {' '.join(MODES)}")
    return list(dict.fromkeys(modes))


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None,
                        help="where the checks run (default: cuda when torch sees a GPU)")
    parser.add_argument("--tiny", action="store_true", help="fewer images and ConvFC: a minute or two on a CPU")
    parser.add_argument("--out", default="runs/gpu_check", help="folder for the data, the runs, the logs, bench.json")
    parser.add_argument("--modes", default=None, metavar='"MODE ..."',
                        help=f"among {' '.join(MODES)} (default: all; fp32 with --tiny)")
    parser.add_argument("--scripts", default=None, metavar='"NAME ..."',
                        help="only these scripts' checks and those writing what they read (e.g. \"eval_curve.py "
                        "swag.py\"; train_curve.py for train.py --curve; default: all)")
    parser.add_argument("--bench_only", choices=BENCH_FIGURES, default=None, metavar="FIGURE",
                        help="bench.py --only FIGURE: one of " + ", ".join(BENCH_FIGURES) + " (default: all)")
    parser.add_argument("--no_tests", action="store_true", help="without (b), the tests that need a GPU")
    parser.add_argument("--no_bench", action="store_true", help="without (c), the bench")
    return parser


def settle(args) -> None:
    """The device, modes and checks of the command line, or a UserError."""
    import torch

    if args.device is None:
        if not torch.cuda.is_available():
            raise UserError("torch sees no CUDA device here: use --device cpu (with --tiny for a short run)")
        args.device = "cuda"
    elif args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False)")
    args.modes = parse_modes(args.modes if args.modes is not None else "fp32" if args.tiny else " ".join(MODES))
    if args.scripts is not None:
        args.scripts = selected(args.scripts)
    out = os.path.abspath(args.out)
    if os.path.isfile(out) or (os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, MARKER))):
        raise UserError(f"--out {args.out}: holds files gpu_check did not write; give a new or empty folder")
    args.out = out


def prepare(out: str, size: dict) -> str:
    """OUT marked as gpu_check's, last time's runs and logs removed (a finished run would only say so),
    and the stand-in data written; the data folder."""
    import data

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, MARKER), "w") as f:
        f.write("Written by scripts/gpu_check.sh: data/, runs/, logs/ and bench.json are removed by its next run.\n")
    for sub in ("runs", "logs", "data"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):  # a bench that fails this time leaves none of last time's
        os.remove(os.path.join(out, "bench.json"))
    data_path = os.path.join(out, "data")
    data.write_random_cifar(data.cifar_candidate_dirs("CIFAR10", data_path)[0], "CIFAR10", size["train"], size["test"])
    os.makedirs(os.path.join(out, "logs"))
    return data_path


def flags_of(module) -> set[str]:
    parser = module.build_parser()
    return {option for action in parser._actions for option in action.option_strings}


def run_check(module_name: str, argv: list[str], log: str) -> str | None:
    """``python <module>.py <argv>`` in this process, its output in ``log``; None, or its first error line."""
    out = io.StringIO()
    error = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            cli.run(importlib.import_module(module_name).main, argv)
        except SystemExit as exc:
            if exc.code not in (0, None):
                said = [line for line in out.getvalue().splitlines() if line.strip()]
                error = next((line for line in said if line.startswith("error:")),
                             said[-1] if said else f"exit status {exc.code}")
        except Exception as exc:  # noqa: BLE001  a crash is the finding: its first line, the traceback in the log
            traceback.print_exc(file=out)
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    with open(log, "w") as f:
        f.write(f"python {module_name}.py {' '.join(argv)}\n\n{out.getvalue()}")
    return error


def run_scripts(args, data_path: str, size: dict) -> bool:
    """(a): every check in every mode, one line each; whether all passed."""
    import torch

    passed = True
    for mode in args.modes:
        runs = os.path.join(args.out, "runs", mode)
        failed = set()
        for name, module_name, argv, needs in checks(data_path, runs, size["model"], size["hessian_images"]):
            if args.scripts is not None and name not in args.scripts:
                continue
            label = f"{name:<18} {mode:<7}"
            missing = [flag for flag in MODES[mode] if flag.split("=")[0] not in flags_of(importlib.import_module(module_name))]
            if missing:
                print(f"skip {label} skipped: no {missing[0].split('=')[0]}", flush=True)
                continue
            if any(n in failed for n in needs):
                print(f"skip {label} needs {', '.join(n for n in needs if n in failed)}", flush=True)
                failed.add(name)
                passed = False
                continue
            log = os.path.join(args.out, "logs", f"{mode}-{name.replace(' ', '_').replace('--', '')}.log")
            started = time.perf_counter()
            error = run_check(module_name, [*argv, f"--device={args.device}", *MODES[mode]], log)
            if mode == "compile":
                torch._dynamo.reset()  # each script's own graphs: none left over to count against the next's limits
            if error is None:
                print(f"ok   {label} {time.perf_counter() - started:6.1f} s", flush=True)
            elif MODES[mode] and error.startswith(f"error: {MODES[mode][0]}"):  # its own refusal: the mode is not its
                print(f"skip {label} skipped: {error[len('error: '):]}", flush=True)
            else:
                print(f"FAIL {name} {mode}: {error}", flush=True)
                failed.add(name)
                passed = False
    return passed


def run_tests(args) -> bool:
    """(b): the tests marked gpu; one line, the skip reason without CUDA."""
    log = os.path.join(args.out, "logs", "test_gpu.log")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-m", "gpu", "-p", "no:cacheprovider",
                             os.path.join("tests", "test_gpu.py")], cwd=ROOT, capture_output=True, text=True)
    with open(log, "w") as f:
        f.write(result.stdout + result.stderr)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else f"exit status {result.returncode}"
    if result.returncode == 0:
        reason = next((line.split(": ", 1)[-1] for line in lines if line.startswith("SKIPPED")), "")
        print(f"ok   {'tests/test_gpu.py':<26} {time.perf_counter() - started:6.1f} s  {summary}"
              + (f" ({reason})" if "skipped" in summary and "passed" not in summary else ""), flush=True)
        return True
    first = next((line for line in lines if line.startswith(("FAILED", "ERROR", "E "))), summary)
    print(f"FAIL tests/test_gpu.py: {first}", flush=True)
    return False


def run_bench(args) -> tuple[bool, str]:
    """(c): scripts/bench.py in its own process (its thread settings and timings its own); its table."""
    out = os.path.join(args.out, "bench.json")
    command = [sys.executable, os.path.join(ROOT, "scripts", "bench.py"), f"--device={args.device}", f"--out={out}",
               "--tiny" if args.tiny else "--quick"] + ([f"--only={args.bench_only}"] if args.bench_only else [])
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    with open(os.path.join(args.out, "logs", "bench.log"), "w") as f:
        f.write(" ".join(command) + "\n\n" + result.stdout + result.stderr)
    if result.returncode != 0:
        said = [line for line in result.stderr.splitlines() if line.strip()]
        print(f"FAIL bench.py: {said[-1] if said else f'exit status {result.returncode}'}", flush=True)
        return False, ""
    print(f"ok   {'bench.py':<26} {time.perf_counter() - started:6.1f} s  {out}", flush=True)
    return True, result.stdout


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    settle(args)
    import torch

    size = SIZES["tiny" if args.tiny else "full"]
    started = time.perf_counter()
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"gpu_check on {args.device} ({name}), torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"modes {' '.join(args.modes)}, model {size['model']}; logs in {os.path.join(args.out, 'logs')}", flush=True)
    data_path = prepare(args.out, size)
    passed = run_scripts(args, data_path, size)
    if not args.no_tests:
        passed = run_tests(args) and passed
    table = ""
    if not args.no_bench:
        ok, table = run_bench(args)
        passed = ok and passed
    print(f"{'all passed' if passed else 'FAILED'} in {time.perf_counter() - started:.0f} s", flush=True)
    if table:
        print(table, end="", flush=True)
    if not passed:
        sys.exit(1)


if __name__ == "__main__":
    cli.run(main)
