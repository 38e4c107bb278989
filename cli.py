"""What the scripts share: argument groups, the error wrapper, per-epoch tables, progress bars.

Scripts only; the library (models/, curves/, data.py, utils.py) never imports this.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
from tabulate import tabulate
from tqdm import tqdm

import data
import models
import runtime
import utils
from errors import DivergedError, UserError, WriteError


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: X)`` to every help line that does not already say its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are one ``error:`` line and exit status 2, without the usage block.

    Every ``--flag_name`` is also accepted as ``--flag-name``: the original code's users type
    both (its own scripts mix ``--num-workers`` and ``--use_test``).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault("epilog", "Every flag may also be written with hyphens: --use-test for --use_test.")
        super().__init__(**kwargs)

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args([self._underscored(a) for a in args], namespace)

    def _underscored(self, word: str) -> str:
        """``--a-b[=v]`` as ``--a_b[=v]`` when only the underscore spelling is a flag of ours."""
        if not word.startswith("--") or "-" not in word[2:].split("=", 1)[0]:
            return word
        name, sep, value = word.partition("=")
        spelled = "--" + name[2:].replace("-", "_")
        if name not in self._option_string_actions and spelled in self._option_string_actions:
            return spelled + sep + value
        return word

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def run(main, argv=None) -> None:
    """Call ``main(argv)``; a UserError becomes ``error: ...`` and exit 2, divergence and write
    errors exit 1. Under torchrun every process exits so, and only rank 0 prints."""
    try:
        main(argv)
    except UserError as exc:
        _fail(str(exc), 2)
    except (DivergedError, WriteError) as exc:
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _fail(message: str, status: int) -> None:
    if os.environ.get("RANK", "0") == "0":
        print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


# --------------------------------------------------------------------------- arguments

def add_data_arguments(parser: argparse.ArgumentParser, from_checkpoint: bool = False,
                       use_test_default: bool = False, label_noise: bool = False) -> None:
    """--dataset --data_path --transform --use_test/--no_use_test --batch_size --num_workers, and
    for a training script (``label_noise``) --label_noise --label_noise_seed.

    With ``from_checkpoint`` the dataset, transform and split default to the checkpoint's.
    ``args.use_test`` and ``args.label_noise`` stay None unless given: ``resolve_split`` settles them.
    """
    group = parser.add_argument_group("Data")
    default = None if from_checkpoint else "CIFAR10"
    group.add_argument("--dataset", choices=data.DATASETS, default=default,
                       help="dataset; training augmentation: CIFAR random 32x32 crops of the image zero-padded by "
                            "4 and horizontal flips; FashionMNIST random 28x28 crops of the image zero-padded by 2 "
                            "and horizontal flips; MNIST the same crops without flips; DIGITS none"
                            + (" (default: the checkpoint's)" if from_checkpoint else ""))
    group.add_argument("--data_path", default="data", metavar="PATH",
                       help="folder holding the datasets: CIFAR under PATH/cifar10/ or PATH/; FashionMNIST and "
                            "MNIST idx files in PATH/, else /usr/share/datasets/fashion-mnist/ (Debian's "
                            "dataset-fashion-mnist), else PATH/FashionMNIST/raw/ (torchvision's; MNIST/raw/)")
    group.add_argument("--transform", choices=sorted(data.NORMALISATIONS),
                       default=None if from_checkpoint else "VGG",
                       help="normalisation constants of the papers' code")
    if from_checkpoint:
        default_of = {True: " (default: the checkpoint's split)", False: ""}
    else:
        default_of = {use_test_default: " (default)", not use_test_default: ""}
    group.add_argument("--use_test", action="store_const", const=True, default=None,
                       help="train on all training images and evaluate on the test set" + default_of[True])
    group.add_argument("--no_use_test", dest="use_test", action="store_const", const=False,
                       help="hold out the last 5000 training images (360 for DIGITS) and evaluate on them"
                            + default_of[False])
    group.add_argument("--no_augment", dest="augment", action="store_const", const=False, default=None,
                       help="train on the images as they are, without the dataset's random crops and flips "
                            "(default: the checkpoint's, else the dataset's augmentation)")
    group.add_argument("--batch_size", type=positive_int, default=None,
                       help="mini-batch size (default: 128; 32 for DIGITS)")
    group.add_argument("--num_workers", type=int, default=4,
                       help="accepted for the original commands; the in-memory pipeline needs no workers")
    if label_noise:
        group.add_argument("--label_noise", type=fraction, default=None, metavar="FRACTION",
                           help="give this fraction of the training labels a uniformly random label "
                                "(learning-subspaces' rule; evaluation labels are never touched) "
                                "(default: the checkpoint's, else 0)")
        group.add_argument("--label_noise_seed", type=int, default=None,
                           help="seed of the noise draws, the same for every --seed: the runs compared "
                                "train on the same labels, as in learning-subspaces, whose one saved draw "
                                "seed 0 reproduces (default: the checkpoint's, else 0)")


TRAIN_EVAL = ("augmented", "plain")


def add_train_eval_argument(group) -> None:
    """--train_eval: which training images recompute BatchNorm and give the train loss of a point."""
    group.add_argument("--train_eval", choices=TRAIN_EVAL, default="augmented",
                       help="training images for the BatchNorm update and the train loss of each point: "
                            "augmented (random crops and flips, in order, as the original code) or plain")


def train_eval_loader(args, loaders: dict):
    """The loader ``--train_eval`` names (see ``data.make_loaders``)."""
    return loaders["train_augmented" if args.train_eval == "augmented" else "train_eval"]


def add_model_argument(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--model", choices=sorted(models.MODELS), default=None, required=required,
                        metavar="MODEL", help="one of " + ", ".join(sorted(models.MODELS))
                        + ("" if required else " (default: the checkpoint's)"))


def add_run_arguments(parser: argparse.ArgumentParser, default_dir: str | None = None) -> None:
    """--dir --seed --device --amp --channels_last --compile.

    ``--dir`` is optional, as in the original scripts: ``default_dir`` (None: print only).
    """
    group = parser.add_argument_group("Run")
    group.add_argument("--dir", default=default_dir,
                       help="folder for the run's files" + ("" if default_dir else " (default: print only)"))
    group.add_argument("--restart", action="store_true",
                       help="start over in --dir, removing the files of the run it holds (default: a run "
                            "started again continues, and another command in its --dir is an error)")
    group.add_argument("--seed", type=int, default=1, help="random seed")
    group.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    group.add_argument("--amp", action="store_true",
                       help="mixed precision: bfloat16 autocast, or float16 with a gradient scaler on GPUs "
                            "without bfloat16 (V100, T4)")
    group.add_argument("--amp_dtype", choices=("bfloat16", "float16"), default=None,
                       help="the autocast type of --amp (default: chosen for the device)")
    group.add_argument("--channels_last", action="store_true", help="channels-last memory format")
    group.add_argument("--compile", action="store_true", help="torch.compile the model")
    group.add_argument("--dist_backend", choices=("nccl", "gloo"), default=None,
                       help="torch.distributed backend under torchrun (default: nccl on GPUs, gloo on CPUs)")


def int_at_least(minimum: int, unit: str = ""):
    """An argparse type: an int of at least ``minimum`` (of ``unit``, for the message)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"at least {minimum}{' ' + unit if unit else ''} needed (got {value})")
        return value
    return parse


positive_int = int_at_least(1)


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in [0, 1]")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a non-negative number")
    return value


# What a checkpoint fixes for a script that starts from it (scripts without a flag skip its name).
FROM_CHECKPOINT = ("model", "dataset", "transform", "label_noise", "label_noise_seed")


def resolve_from_checkpoint(args: argparse.Namespace, ckpt: dict, path: str, names=FROM_CHECKPOINT) -> None:
    """Take ``names`` from the checkpoint where not given; a contradicting flag is an error."""
    for name in names:
        if not hasattr(args, name):
            continue
        given, stored = getattr(args, name), ckpt.get(name)
        if given is None:
            setattr(args, name, stored)
        elif stored is not None and given != stored:
            raise UserError(f"--{name}={given} contradicts {path}, which has {name} {stored}")


def checkpoint_split(ckpt: dict) -> bool | None:
    """Whether ``ckpt`` was trained with --use_test (None if it does not say)."""
    if "use_test" in ckpt:
        return ckpt["use_test"]
    return (ckpt.get("args") or {}).get("use_test")


def resolve_split(args, default: bool, checkpoints: dict | None = None, evaluation_only: bool = False) -> None:
    """Settle ``args.use_test``: the flag if given, else the split of the ``checkpoints``
    (path -> checkpoint) the run starts from, else ``default``.

    A run that continues from networks keeps their split; a flag that contradicts it is an
    error, and so are networks of different splits. An evaluation (``evaluation_only``) may
    always use the test set, whose images no network trained on; it never evaluates on
    held-out images that a network trained with --use_test was trained on.
    """
    _settle_augmentation(args, checkpoints)
    stored = {path: checkpoint_split(c) for path, c in (checkpoints or {}).items()}
    stored = {path: split for path, split in stored.items() if split is not None}
    if evaluation_only and args.use_test is None and len(set(stored.values())) > 1:
        args.use_test = True  # networks of both splits: only the test images are new to all
    if args.use_test is None and len(set(stored.values())) > 1:
        raise UserError("the checkpoints were trained on different splits: "
                        + ", ".join(f"{p} {'with' if s else 'without'} --use_test" for p, s in stored.items()))
    _settle_label_noise(args)
    if args.use_test is None:
        args.use_test = next(iter(stored.values())) if stored else default
        return
    for path, split in stored.items():
        if args.use_test != split and not (evaluation_only and args.use_test):
            given = "--use_test" if args.use_test else "--no_use_test"
            trained = ("on all training images (--use_test), so the held-out images were among them"
                       if split else "with the last training images held out (--no_use_test)")
            raise UserError(f"{given} contradicts {path}, which was trained {trained}")


def _settle_augmentation(args, checkpoints: dict | None) -> None:
    """--no_augment not given: the augmentation the checkpoints' networks trained with (FGE, SWA, a curve
    or a simplex continue on the images their networks saw), else the dataset's."""
    if getattr(args, "augment", True) is not None:
        return
    stored = [(c.get("args") or {}).get("augment") for c in (checkpoints or {}).values() if c is not None]
    args.augment = next((a for a in stored if a is not None), True)


def _settle_label_noise(args) -> None:
    """A training script's label noise that neither a flag nor a checkpoint gave: none (seed 0)."""
    if hasattr(args, "label_noise"):
        args.label_noise = args.label_noise or 0.0
        args.label_noise_seed = args.label_noise_seed or 0


# --------------------------------------------------------------------------- set-up

def load_data(args, procs, eval_batch_size: int | None = None):
    """The dataset and its loaders (see ``data.make_loaders``) on the process's device, each
    loader giving this process its share of every global batch."""
    assert args.use_test is not None, "resolve_split() first"
    dataset = data.load_dataset(args.dataset, args.data_path, args.use_test,
                                label_noise=getattr(args, "label_noise", 0.0), noise_seed=getattr(args, "label_noise_seed", 0),
                                augment=getattr(args, "augment", True) is not False)
    loaders = data.make_loaders(dataset, args.batch_size, args.transform, device=procs.device, seed=args.seed,
                                channels_last=args.channels_last, eval_batch_size=eval_batch_size,
                                rank=procs.rank, world_size=procs.world_size)
    return dataset, loaders


def build_model(name: str, dataset: data.Dataset, device: torch.device, channels_last: bool = False):
    """A registered model for ``dataset``'s classes and image shape; unusable shapes are UserErrors."""
    try:
        model = models.build_model(name, dataset.num_classes, dataset.channels, dataset.size)
    except ValueError as exc:
        raise UserError(f"{name} on {dataset.name}: {exc}") from exc
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def model_kwargs(dataset: data.Dataset) -> dict:
    """What a checkpoint stores to rebuild the model: the dataset's image shape."""
    return {"in_channels": dataset.channels, "image_size": dataset.size}


def model_payload(args, dataset: data.Dataset, model, optimizer=None, scaler=None, **extra) -> dict:
    """A script's 'model' checkpoint of ``model`` (see ``utils.model_checkpoint``), as of now."""
    return utils.model_checkpoint(args.model, model, num_classes=dataset.num_classes,
                                  model_kwargs=model_kwargs(dataset), dataset=args.dataset, transform=args.transform,
                                  optimizer=optimizer, args=vars(args),
                                  scaler_state=scaler.state_dict() if scaler is not None else None, **extra)


def restore_training(ckpt: dict, model, optimizer, scaler=None, momentum: float | None = None,
                     wd: float | None = None) -> None:
    """Weights, optimizer state (momentum buffers) and gradient scaler from a checkpoint. The
    optimizer's state brings its hyperparameters too: ``momentum`` and ``wd``, if given, win."""
    model.load_state_dict(ckpt["model_state"])
    if optimizer is not None and ckpt.get("optimizer_state") is not None:
        optimizer.load_state_dict(ckpt["optimizer_state"])
        for group in optimizer.param_groups:
            if momentum is not None:
                group["momentum"] = momentum
            if wd is not None:
                group["weight_decay"] = wd
    if scaler is not None and ckpt.get("scaler_state"):
        scaler.load_state_dict(ckpt["scaler_state"])


def sync_batchnorm(model, args, procs):
    """--sync_bn: SyncBatchNorm across the processes (torch's runs on GPUs only)."""
    if not getattr(args, "sync_bn", False) or not procs.distributed:
        return model
    if procs.device.type != "cuda":
        raise UserError("--sync_bn needs GPUs: torch's SyncBatchNorm does not run on CPUs")
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def maybe_compile(module, enabled: bool):
    """``torch.compile(module)`` when asked; checkpoints keep using the plain module."""
    return torch.compile(module) if enabled else module


def train_epoch(run, forward, loader, optimizer, epoch: int, *, resume: dict | None = None, lr: float | None = None,
                lr_fn=None, regularizer=None, amp=None, scaler=None, draws: int | None = None,
                samples: int = 1) -> dict:
    """One training epoch of a script (``epoch`` from 0; see ``runtime.Run.train_epoch``), with a
    progress bar, and a divergence that names the epoch."""
    try:
        return run.train_epoch(forward, loader, optimizer, epoch, resume=resume, lr=lr, lr_fn=lr_fn,
                               regularizer=regularizer, amp=amp, scaler=scaler, draws=draws, samples=samples,
                               progress=lambda batches: progress(batches, f"epoch {epoch + 1}", total=len(loader)))
    except DivergedError as exc:
        raise DivergedError(f"epoch {epoch + 1}: {exc}; the files written so far are kept") from exc


def settings_from_checkpoint(args, parser, argv: list[str], ckpt: dict, path: str,
                             structural=FROM_CHECKPOINT) -> set[str]:
    """--resume: the run's settings are the checkpoint's; flags given on the command line
    override them, but not the ``structural`` ones, nor the split, which must agree.
    Returns the flags given (they may differ from the run's). --dir defaults to the
    checkpoint's folder: the run it continues."""
    given = runtime.given_flags(parser, argv)
    stored = ckpt.get("args") or {}
    for key, value in stored.items():
        if key in runtime.OPERATIONAL or key in given or not hasattr(args, key):
            continue
        setattr(args, key, value)
    resolve_from_checkpoint(args, ckpt, path, structural)
    if "dir" not in given:
        args.dir = os.path.dirname(os.path.abspath(path))
    if "use_test" in given:
        resolve_split(args, False, {path: ckpt})
    return given


def finished(run) -> None:
    """What a finished run started again says (and then it does nothing)."""
    if run.procs.is_main:
        print(f"{run.directory} holds this run, finished (summary.json): nothing to do. --restart starts it "
              "over" + (", --resume it with more --epochs to train on" if hasattr(run.args, "epochs") else ""),
              flush=True)


# --------------------------------------------------------------------------- output

def is_main() -> bool:
    """Whether this process prints: the only one, or torchrun's rank 0."""
    return os.environ.get("RANK", "0") == "0"


def progress(iterable, desc: str, total: int | None = None):
    """A progress bar on stderr that disappears when done (rank 0 only)."""
    if not is_main():
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr)


class Table:
    """Prints one aligned row per call, with the header above the first (every 40 rows again)."""

    def __init__(self, columns: list[str], floatfmt: str = "9.4f"):
        self.columns, self.floatfmt, self.rows = columns, floatfmt, 0

    def print(self, row: dict) -> None:
        if not is_main():
            return
        values = [[row.get(c) for c in self.columns]]
        text = tabulate(values, self.columns, tablefmt="simple", floatfmt=self.floatfmt)
        lines = text.split("\n")
        print("\n".join(lines if self.rows % 40 == 0 else lines[2:]), flush=True)
        self.rows += 1
