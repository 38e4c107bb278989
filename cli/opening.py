"""The scripts' run: the error wrapper, the opening every script shares (processes, run folder,
data), the model and its checkpoint, and a training epoch with its progress bar and stop signals.
"""
from __future__ import annotations

import errno
import os
import sys
from typing import NamedTuple

import torch

import data
import models
import runtime
import utils
from cli.output import progress
from runtime.errors import DivergedError, UserError, WriteError


FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}  # a write that failed for want of room


def run(main, argv=None) -> None:
    """Call ``main(argv)``; a UserError becomes ``error: ...`` and exit 2, divergence and write
    errors exit 1. Under torchrun every process exits so, and only rank 0 prints."""
    try:
        main(argv)
    except UserError as exc:
        _fail(str(exc), 2)
    except (DivergedError, WriteError) as exc:
        _fail(str(exc), 1)
    except OSError as exc:  # a file written directly, not atomically (a picture): its disk full, its size limit
        if exc.errno not in FULL:
            raise
        _fail(f"cannot write {exc.filename or 'a file'}: {exc.strerror}", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _fail(message: str, status: int) -> None:
    if os.environ.get("RANK", "0") == "0":
        print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


class Opened(NamedTuple):
    """What ``open_run`` returns: the processes, the run folder, and the data (None where not loaded)."""

    procs: runtime.Processes
    run: runtime.Run
    dataset: data.Dataset | None
    loaders: dict | None


def open_run(args, script: str, *, saves: bool, resume_from: str | None = None, may_differ=(),
             networks: dict | None = None, load: bool = True, eval_batch_size: int | None = None) -> Opened | None:
    """The opening every script shares: the batch size settled, the processes started (torchrun's
    too), the run folder opened (``runtime.Run``: continue, or start, or refuse another command's
    folder), and, unless the run is finished (it then says so and returns None), the seed set and
    the data loaded. ``networks`` (path -> checkpoint): the networks the run starts from, which
    must be for the data's classes and image shape.

    ``saves``: what the script is, for the stop signals (``runtime.signals``; until now either exits
    75 at once): True for one that saves where it stands (it calls ``run.set_payload``, or
    ``run.resume_points``): until those calls a signal still exits 75 at once, nothing being
    computed, and after them it stops the run at the next step or point it can save; False for
    one with nothing to save (an evaluation): SIGTERM exits 75 at once, for a requeue that starts
    it over, and SIGUSR1 is ignored."""
    if getattr(args, "batch_size", 0) is None and getattr(args, "dataset", None):
        args.batch_size = data.default_batch_size(args.dataset)
    procs = runtime.start_processes(args)
    run = runtime.Run(args, procs, script=script, resume_from=resume_from, may_differ=may_differ, saves=saves)
    if run.state == "finished":
        finished(run)
        return None
    torch.manual_seed(args.seed)
    dataset = loaders = None
    if load:
        dataset, loaders = load_data(args, procs, eval_batch_size)
        for path, ckpt in (networks or {}).items():
            check_network(path, ckpt, dataset)
    return Opened(procs, run, dataset, loaders)


def check_network(path: str, ckpt: dict, dataset: data.Dataset) -> None:
    """A checkpoint's network must be for ``dataset``'s classes and image shape."""
    shape = {key: ckpt["model_kwargs"].get(key) for key in model_kwargs(dataset)}  # other kwargs are the model's
    if ckpt["num_classes"] != dataset.num_classes or shape != model_kwargs(dataset):
        raise UserError(f"{path} holds a network for {ckpt['num_classes']} classes and {shape}, "
                        f"but {dataset.name} has {dataset.num_classes} classes and {model_kwargs(dataset)}")


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
    """A script's 'model' checkpoint of ``model`` (see ``runtime.model_checkpoint``), as of now."""
    return runtime.model_checkpoint(args.model, model, num_classes=dataset.num_classes,
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


def train_epoch(run: runtime.Run, forward, loader, optimizer, epoch: int, *, resume: dict | None = None,
                lr: float | None = None, lr_fn=None, regularizer=None, amp=None, scaler=None,
                draws: int | None = None, samples: int = 1) -> dict:
    """One training epoch of a script's run (``epoch`` from 0; see ``utils.train_epoch``), with a
    progress bar: a constant ``lr`` or a per-iteration ``lr_fn``; the data draws of epoch ``draws``
    (default ``epoch``); resumption within the epoch (``resume``: the checkpoint it stopped in); a
    stop signal honoured after the current step (the run saves and exits for a requeue); a
    divergence that names the epoch."""
    if lr is not None:
        utils.set_learning_rate(optimizer, lr)
    loader.set_epoch(epoch if draws is None else draws)
    start, partial = 0, None
    if resume is not None and resume.get("step") and resume["epoch"] == epoch:
        start, partial = resume["step"], resume.get("partial")
    try:
        return utils.train_epoch(forward, loader, optimizer, lr_fn=lr_fn, regularizer=regularizer, amp=amp,
                                 scaler=scaler, start_step=start, partial=partial, should_stop=run.stop_requested,
                                 progress=lambda batches: progress(batches, f"epoch {epoch + 1}", total=len(loader)),
                                 samples=samples)
    except utils.Interrupted as stop:
        run.requeue(epoch, stop.step, stop.partial)
    except DivergedError as exc:
        raise DivergedError(f"epoch {epoch + 1}: {exc}; the files written so far are kept") from exc


def finished(run) -> None:
    """What a finished run started again says (and then it does nothing)."""
    if run.procs.is_main:
        print(f"{run.directory} holds this run, finished (summary.json): nothing to do. --restart starts it "
              "over" + (", --resume it with more --epochs to train on" if hasattr(run.args, "epochs") else ""),
              flush=True)
