"""Checkpoint files: what they hold, writing and reading them, finding a run's latest.

A checkpoint is a dict that ``torch.load(path, weights_only=True)`` reads: ``kind`` ('model',
'curve', 'subspace', 'swag'), what rebuilds the network (``model``, ``model_kwargs``, ``num_classes``),
the data it was trained on (``dataset``, ``transform``, split and label noise), where training
stands (``epoch``, ``step``, optimizer state, random states) and the run's ``args``. Files are
written atomically (``runtime.files``): a run killed at any moment leaves the previous one intact.
``curves.curve_checkpoint`` and ``curves.subspace_checkpoint`` add what rebuilds a curve or subspace;
swa.py --swag's swag.pt is a model checkpoint of the last SGD iterate with ``swag_state`` (``ensembles.SWAG``).
"""
from __future__ import annotations

import glob
import os
import re
import sys

import torch
import torch.nn as nn

from runtime.errors import UserError
from runtime.files import atomic_open


def save_checkpoint(path: str, state: dict) -> None:
    """Write ``state`` to ``path`` atomically, so that a run killed at any moment leaves the old file intact."""
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str, kind: str | None = None, model: str | None = None,
                    num_classes: int | None = None) -> dict:
    """Read a checkpoint written by this project, checking what the caller expects.

    Every mismatch is a UserError naming the file: missing or unreadable, not one
    of ours, the wrong ``kind`` ('model' or 'curve'), another ``model`` or another
    number of classes.
    """
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, not a torch file, permissions, ...
        raise UserError(f"cannot read checkpoint {path}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    if not isinstance(ckpt, dict) or "kind" not in ckpt or "model_state" not in ckpt:
        raise UserError(f"{path} is not a checkpoint written by this project")
    if kind is not None and ckpt["kind"] != kind:
        raise UserError(f"{path} is a {ckpt['kind']!r} checkpoint, but a {kind!r} checkpoint is needed")
    if model is not None and ckpt["model"] != model:
        raise UserError(f"{path} holds a {ckpt['model']} model, not {model}")
    if num_classes is not None and ckpt["num_classes"] != num_classes:
        raise UserError(f"{path} has {ckpt['num_classes']} classes, but the data have {num_classes}")
    return ckpt


def model_checkpoint(model_name: str, model: nn.Module, *, num_classes: int, model_kwargs: dict,
                     dataset: str, transform: str, epoch: int = 0, optimizer=None, args: dict | None = None,
                     **extra) -> dict:
    """A 'model' checkpoint: everything needed to rebuild ``model`` and to resume its training."""
    return {
        "kind": "model", "model": model_name, "model_kwargs": dict(model_kwargs),
        "num_classes": num_classes, "dataset": dataset, "transform": transform, "epoch": epoch,
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "use_test": (args or {}).get("use_test"), "label_noise": (args or {}).get("label_noise"),
        "label_noise_seed": (args or {}).get("label_noise_seed"), "args": dict(args or {}), "rng_state": rng_state(),
        **extra,
    }


def rng_state() -> dict:
    """The global random states that training consumes (dropout, curve t), for exact resume."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


LAST = "last.pt"
_CHECKPOINT_NAME = re.compile(r"^(.*?)(?:checkpoint-(\d+)|last)\.pt$")


def latest_checkpoint(folder: str, prefix: str = "") -> str | None:
    """The most advanced complete checkpoint of a run in ``folder``: ``last.pt`` (which may hold
    a run stopped within an epoch) or the highest ``checkpoint-<epoch>.pt``; None if there is
    none. ``prefix``: the run's file names begin with it (see ``Run``)."""
    best, best_progress = None, (-1, -1)
    for path in glob.glob(os.path.join(folder, glob.escape(prefix) + "checkpoint-*.pt")):
        match = _CHECKPOINT_NAME.match(os.path.basename(path))
        if match and match.group(1) == prefix and match.group(2) and (int(match.group(2)), 0) > best_progress:
            best, best_progress = path, (int(match.group(2)), 0)
    last = os.path.join(folder, prefix + LAST)
    if os.path.isfile(last):
        progress = progress_of(last)
        if progress is not None and progress >= best_progress:
            best = last
    return best


def progress_of(path: str) -> tuple[int, int] | None:
    """(epoch, step) of a checkpoint, read lazily (memory-mapped: the weights stay on disk)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ckpt["epoch"]), int(ckpt.get("step", 0))
    except Exception:  # unreadable: not a complete checkpoint
        return None


def resolve_checkpoint_path(path: str, continuing: bool = False) -> str:
    """``path`` itself, or for a run folder its latest complete checkpoint (--ckpt, --resume).

    ``continuing`` (--resume in the checkpoint's own folder): a checkpoint whose folder holds a
    later one of its run means that later one, so that a --resume command started again
    continues instead of going back. (Into another --dir, a run branches off the checkpoint named.)
    """
    if os.path.isdir(path):
        found = latest_checkpoint(path)
        if found is None:
            raise UserError(f"{path} is a folder without checkpoints (checkpoint-<epoch>.pt or {LAST})")
        return found
    match = _CHECKPOINT_NAME.match(os.path.basename(path))
    if continuing and os.path.isfile(path) and match:
        found = latest_checkpoint(os.path.dirname(os.path.abspath(path)), match.group(1))
        if found is not None and (progress_of(found) or (-1, -1)) > (progress_of(path) or (-1, -1)):
            if os.environ.get("RANK", "0") == "0":
                print(f"{path}: its run went on to {found}; continuing from there", file=sys.stderr)
            return found
    return path
