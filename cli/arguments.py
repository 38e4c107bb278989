"""The scripts' command lines: the parser, the argument groups and types, and how flags are
settled from the checkpoints a run starts from (model, data, split, label noise, --resume).
"""
from __future__ import annotations

import argparse
import os
import sys

import data
import models
import runtime
from runtime.errors import UserError


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
        kwargs.setdefault("allow_abbrev", False)  # a typo that is a prefix of a flag (--ck) is an error
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


def add_ece_argument(group, default: int, source: str) -> None:
    """--ece_bins: the equal-width confidence bins of the script's ECE; ``default`` is the script's
    own (its original's count), ``source`` says where that comes from, for --help."""
    group.add_argument("--ece_bins", type=int_at_least(1, "bins"), default=default,
                       help=f"equal-width confidence bins of the ECE (default: {default}, {source})")


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


def settings_from_checkpoint(args, parser, argv: list[str], ckpt: dict, path: str,
                             structural=FROM_CHECKPOINT, *, script: str) -> set[str]:
    """--resume: the run's settings are the checkpoint's; flags given on the command line
    override them, but not the ``structural`` ones, nor the split, which must agree.
    Returns the flags given (they may differ from the run's). --dir defaults to the
    checkpoint's folder: the run it continues. The checkpoint must be of a run of ``script``
    (its args' "script"; checkpoints from before it was recorded are taken as they are)."""
    stored = ckpt.get("args") or {}
    written_by = stored.get("script")
    if written_by not in (None, script):
        raise UserError(f"{path} is a checkpoint of a {written_by}.py run: {script}.py --resume continues a run "
                        f"of {script}.py (a {written_by}.py run continues with its own command)")
    given = runtime.given_flags(parser, argv)
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
