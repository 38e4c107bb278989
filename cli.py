"""What the scripts share: argument groups, the error wrapper, per-epoch tables, progress bars.

Scripts only; the library (models/, curves/, data.py, utils.py) never imports this.
"""
from __future__ import annotations

import argparse
import sys

import torch
from tabulate import tabulate
from tqdm import tqdm

import data
import models
import utils
from errors import DivergedError, UserError


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
    """Call ``main(argv)``; a UserError becomes ``error: ...`` and exit 2, divergence exit 1."""
    try:
        main(argv)
    except UserError as exc:
        _fail(str(exc), 2)
    except DivergedError as exc:
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _fail(message: str, status: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


# --------------------------------------------------------------------------- arguments

def add_data_arguments(parser: argparse.ArgumentParser, from_checkpoint: bool = False,
                       use_test_default: bool = False) -> None:
    """--dataset --data_path --transform --use_test/--no_use_test --batch_size --num_workers.

    With ``from_checkpoint`` the dataset, transform and split default to the checkpoint's.
    ``args.use_test`` stays None unless given: ``resolve_split`` settles it.
    """
    group = parser.add_argument_group("Data")
    default = None if from_checkpoint else "CIFAR10"
    group.add_argument("--dataset", choices=data.DATASETS, default=default,
                       help="dataset" + (" (default: the checkpoint's)" if from_checkpoint else ""))
    group.add_argument("--data_path", default="data", metavar="PATH",
                       help="folder holding the datasets (CIFAR under PATH/cifar10/ or PATH/)")
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
    group.add_argument("--batch_size", type=positive_int, default=None,
                       help="mini-batch size (default: 128; 32 for DIGITS)")
    group.add_argument("--num_workers", type=int, default=4,
                       help="accepted for the original commands; the in-memory pipeline needs no workers")


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
    group.add_argument("--seed", type=int, default=1, help="random seed")
    group.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    group.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    group.add_argument("--channels_last", action="store_true", help="channels-last memory format")
    group.add_argument("--compile", action="store_true", help="torch.compile the model")


def int_at_least(minimum: int, unit: str = ""):
    """An argparse type: an int of at least ``minimum`` (of ``unit``, for the message)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"at least {minimum}{' ' + unit if unit else ''} needed (got {value})")
        return value
    return parse


positive_int = int_at_least(1)


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a non-negative number")
    return value


def resolve_from_checkpoint(args: argparse.Namespace, ckpt: dict, path: str,
                            names=("model", "dataset", "transform")) -> None:
    """Take ``names`` from the checkpoint where not given; a contradicting flag is an error."""
    for name in names:
        given, stored = getattr(args, name, None), ckpt.get(name)
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
    stored = {path: checkpoint_split(c) for path, c in (checkpoints or {}).items()}
    stored = {path: split for path, split in stored.items() if split is not None}
    if evaluation_only and args.use_test is None and len(set(stored.values())) > 1:
        args.use_test = True  # networks of both splits: only the test images are new to all
    if args.use_test is None and len(set(stored.values())) > 1:
        raise UserError("the checkpoints were trained on different splits: "
                        + ", ".join(f"{p} {'with' if s else 'without'} --use_test" for p, s in stored.items()))
    if args.use_test is None:
        args.use_test = next(iter(stored.values())) if stored else default
        return
    for path, split in stored.items():
        if args.use_test != split and not (evaluation_only and args.use_test):
            given = "--use_test" if args.use_test else "--no_use_test"
            trained = ("on all training images (--use_test), so the held-out images were among them"
                       if split else "with the last training images held out (--no_use_test)")
            raise UserError(f"{given} contradicts {path}, which was trained {trained}")


# --------------------------------------------------------------------------- set-up

def device_of(args) -> torch.device:
    if args.device is None:
        return utils.default_device()
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise UserError(f"unknown device {args.device!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but no CUDA device is available")
    return device


def load_data(args, device: torch.device, eval_batch_size: int | None = None):
    """The dataset and its loaders (see ``data.make_loaders``) on ``device``."""
    assert args.use_test is not None, "resolve_split() first"
    dataset = data.load_dataset(args.dataset, args.data_path, args.use_test)
    if args.batch_size is None:
        args.batch_size = data.default_batch_size(args.dataset)
    loaders = data.make_loaders(dataset, args.batch_size, args.transform, device=device, seed=args.seed,
                                channels_last=args.channels_last, eval_batch_size=eval_batch_size)
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


def maybe_compile(module, enabled: bool):
    """``torch.compile(module)`` when asked; checkpoints keep using the plain module."""
    return torch.compile(module) if enabled else module


def train_epoch(forward, loader, optimizer, epoch: int, *, lr: float | None = None, lr_fn=None,
                regularizer=None, amp: bool = False) -> dict:
    """One training epoch of a script (``epoch`` from 0): a constant ``lr`` or a per-iteration
    ``lr_fn``, the epoch's data draws, a progress bar, and a divergence that names the epoch."""
    if lr is not None:
        utils.set_learning_rate(optimizer, lr)
    loader.set_epoch(epoch)
    try:
        return utils.train_epoch(forward, progress(loader, f"epoch {epoch + 1}"), optimizer, lr_fn=lr_fn,
                                 regularizer=regularizer, amp=amp)
    except DivergedError as exc:
        raise DivergedError(f"epoch {epoch + 1}: {exc}; the files written so far are kept") from exc


# --------------------------------------------------------------------------- output

def progress(iterable, desc: str, total: int | None = None):
    """A progress bar on stderr that disappears when done."""
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr)


class Table:
    """Prints one aligned row per call, with the header above the first (every 40 rows again)."""

    def __init__(self, columns: list[str], floatfmt: str = "9.4f"):
        self.columns, self.floatfmt, self.rows = columns, floatfmt, 0

    def print(self, row: dict) -> None:
        values = [[row.get(c) for c in self.columns]]
        text = tabulate(values, self.columns, tablefmt="simple", floatfmt=self.floatfmt)
        lines = text.split("\n")
        print("\n".join(lines if self.rows % 40 == 0 else lines[2:]), flush=True)
        self.rows += 1
