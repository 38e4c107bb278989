"""Where a run lives: its processes (one, or torchrun's), its folder, its checkpoints, and signals.

Every script takes these from here, so that they behave alike:

- ``Processes``: this process's rank among ``torchrun``'s (NCCL on GPUs, gloo on CPUs), its
  device, DistributedDataParallel, and the autocast type. Only rank 0 writes and prints. On a
  CPU, malloc keeps freed memory for the next step (``keep_freed_cpu_memory``).
- ``Run``: a run's folder. Started again with the same command, a run continues from its
  latest complete checkpoint (``last.pt``, rewritten after every epoch, or a kept
  ``checkpoint-<epoch>.pt``); a finished run is left as it is; another command in the same
  folder is an error that names the flags that differ, unless ``--restart`` asks to start over.
- Signals: SIGTERM and SIGUSR1 (a scheduler's preemption and time-limit warnings) make a
  training run finish its current step, write ``last.pt`` and exit with status 75,
  EX_TEMPFAIL: "start me again".
"""
from __future__ import annotations

import datetime
import glob
import inspect
import json
import os
import re
import signal
import sys
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn as nn

import data
import utils
from errors import UserError

EXIT_REQUEUE = 75  # EX_TEMPFAIL from sysexits.h: a temporary failure, run the same command again

# Flags that say how and where a run executes, not what it computes: they may change
# between a run and its continuation.
OPERATIONAL = {"dir", "device", "num_workers", "data_path", "compile", "resume", "restart", "dist_backend",
               "amp_dtype", "channels_last"}


# --------------------------------------------------------------------------- processes

class Processes:
    """This process among the run's: ``rank`` of ``world_size`` (1 without torchrun) and its device."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0,
                 device: torch.device | str = "cpu", control=None):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device = torch.device(device)
        self._control = control  # a gloo group for flags on the CPU when the main backend is NCCL

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any process (a CPU all-reduce: no device sync)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self._control)
        return bool(value)

    def gather_objects(self, obj) -> list:
        """``obj`` of every process, by rank."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self._control)
        return out

    def wrap(self, module: nn.Module, broadcast_buffers: bool = True) -> nn.Module:
        """``module`` under DistributedDataParallel (itself for one process). Curves and subspaces pass
        ``broadcast_buffers=False``: their fixed bends are buffers, and their BatchNorm statistics are
        recomputed at every evaluated point anyway."""
        if not self.distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        options = {}
        if not broadcast_buffers:  # newer torch names it forward_sync_buffers
            newer = "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
            options = {"forward_sync_buffers" if newer else "broadcast_buffers": False}
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, **options)

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def start_processes(args) -> Processes:
    """Join torchrun's processes when it started this one (WORLD_SIZE > 1), pick the device
    (``--device``, else cuda when available, one GPU per local rank) and settle ``--amp``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(getattr(args, "device", None), local_rank)
    procs = Processes(rank, world, local_rank, device)
    if device.type == "cpu":
        keep_freed_cpu_memory()
    # checked before joining the others: every process fails alike, and none waits for the rest
    if getattr(args, "batch_size", 0) is None and getattr(args, "dataset", None):
        args.batch_size = data.default_batch_size(args.dataset)
    batch_size = getattr(args, "batch_size", None)
    if batch_size is not None and batch_size % world:
        raise UserError(f"--batch_size={batch_size} is the global batch: it must divide among the "
                        f"{world} processes")
    if world > 1:
        backend = getattr(args, "dist_backend", None) or ("nccl" if device.type == "cuda" else "gloo")
        if backend == "nccl" and (device.type != "cuda" or not dist.is_nccl_available()):
            raise UserError("--dist_backend nccl needs CUDA devices and a torch built with NCCL; "
                            "use gloo on CPUs")
        if not dist.is_available() or (backend == "gloo" and not dist.is_gloo_available()):
            raise UserError(f"this torch has no {backend} backend for torch.distributed")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30),
                                device_id=device if device.type == "cuda" else None)
        procs._control = dist.new_group(backend="gloo") if backend != "gloo" else None
    if hasattr(args, "amp"):
        args.amp_dtype = amp_dtype(device, args.amp, getattr(args, "amp_dtype", None))
    return procs


MMAP_THRESHOLD_MAX = 32 * 2 ** 20  # glibc's largest M_MMAP_THRESHOLD on 64-bit systems
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)


def keep_freed_cpu_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for the next step instead of returning it to the system.

    A CPU training step allocates and frees the same large tensors at every step
    (activations, gradients, a subspace's combined weights). By default glibc hands
    blocks over 128 KB (up to 32 MB, as it adapts) straight back to the system, and
    trims its heap when it frees; the next step then takes the memory again page by
    page, each 4 KB page a fault that the kernel fills with zeros: 35,000 faults a
    bf16 VGG16 step, 2% to 40% of its time on a 2-core VM as the host's state varied,
    and more of a subspace's step, whose combined weights and per-vertex gradients are
    new memory at every step. PyTorch's CPU tuning guide
    swaps in another allocator (jemalloc, tcmalloc) for this; two mallopt settings get
    it from glibc: blocks up to 32 MB come from the heap, and the heap is not trimmed.
    The process keeps its peak memory until it exits, as PyTorch's caching allocator
    does on a GPU. Returns whether the settings took (False where malloc is not glibc's).
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the trim threshold first: setting either one also stops glibc adapting the other
    return bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1) and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX))


def _device(requested: str | None, local_rank: int) -> torch.device:
    if requested is None:
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise UserError(f"unknown device {requested!r}") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for, but no CUDA device is available")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device


def amp_dtype(device: torch.device, amp: bool, requested: str | None = None) -> str | None:
    """The autocast type of ``--amp``: bfloat16 where the device computes in it (CPUs, and GPUs
    from Ampere on), float16 with a gradient scaler where it does not (V100, T4); None without."""
    if not amp:
        return None
    if requested in ("bfloat16", "float16"):
        return requested
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return "float16"
    return "bfloat16"


def autocast_type(args) -> torch.dtype | None:
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(getattr(args, "amp_dtype", None))


def grad_scaler(args, device: torch.device):
    """A ``torch.amp.GradScaler`` for float16 training, None otherwise (bfloat16 needs none)."""
    if getattr(args, "amp_dtype", None) != "float16":
        return None
    return torch.amp.GradScaler(device.type)


# --------------------------------------------------------------------------- signals

class StopSignals:
    """SIGTERM and SIGUSR1 set a flag instead of killing the process; the training loop
    looks at it after every step. A second SIGTERM while stopping is left to the default."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.received = None
        self._previous = {}

    def install(self) -> None:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name


# --------------------------------------------------------------------------- a run's folder

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
        progress = _progress(last)
        if progress is not None and progress >= best_progress:
            best = last
    return best


def _progress(path: str) -> tuple[int, int] | None:
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
        if found is not None and (_progress(found) or (-1, -1)) > (_progress(path) or (-1, -1)):
            if os.environ.get("RANK", "0") == "0":
                print(f"{path}: its run went on to {found}; continuing from there", file=sys.stderr)
            return found
    return path


def continues_in_place(args, parser, argv: list[str]) -> bool:
    """Whether --resume continues its checkpoint's run in that run's folder (no other --dir given)."""
    if "dir" not in given_flags(parser, argv) or args.dir is None:
        return True
    folder = os.path.dirname(os.path.abspath(args.resume)) if os.path.isfile(args.resume) else args.resume
    return os.path.abspath(args.dir) == os.path.abspath(folder)


def given_flags(parser, argv: list[str]) -> set[str]:
    """The destinations of the flags written on the command line (not left to their defaults)."""
    import argparse

    saved = [action.default for action in parser._actions]
    try:
        for action in parser._actions:
            action.default = argparse.SUPPRESS
        namespace, _ = parser.parse_known_args(argv)
        return set(vars(namespace))
    finally:
        for action, default in zip(parser._actions, saved):
            action.default = default


def _comparable(value):
    return json.loads(json.dumps(value, default=str))


def differing_flags(stored: dict, current: dict) -> list[str]:
    """The run-defining flags whose values differ, as ``--flag=stored -> current``."""
    out = []
    for key in sorted(set(stored) & set(current) - OPERATIONAL):
        a, b = _comparable(stored[key]), _comparable(current[key])
        if a != b:
            out.append(f"--{key}={a} -> {b}")
    return out


class Run:
    """A run's folder, the records every run writes there, and where the run stands.

    ``state`` is "new" (nothing to continue), "continue" (``checkpoint_path`` is the latest
    complete checkpoint to continue from) or "finished" (summary.json is there and nothing
    asks for more epochs: nothing to do). ``resume_from``: the checkpoint named by
    ``--resume``, whose run this one continues (the folder's own latest checkpoint wins if
    it is further on: the same --resume command started again continues, it does not go
    back). ``may_differ``: flags the user gave with --resume, which may change the run's
    settings (--epochs extends it). Only rank 0 writes; the others keep the same state.

    ``script`` names the run's kind ("train", "fge", ...; recorded in args.json). A folder
    may hold runs of two scripts, as in the FGE paper's commands, which start fge.py in the
    folder of the train.py run it starts from: the second run's files then begin with its
    script's name (``fge-metrics.csv``, ``fge-summary.json``, ``fge-last.pt``, ...), and the
    first run's stay as they are.
    """

    def __init__(self, args, procs: Processes | None = None, *, script: str, resume_from: str | None = None,
                 may_differ=()):
        self.args, self.procs = args, procs or Processes()
        args.script = script
        self.directory = args.dir
        self.checkpoint_path: str | None = None
        self.signals = StopSignals()
        self._payload: Callable[[], dict] | None = None
        self.record: utils.RunRecord | None = None
        self.state, self.continues_folder = "new", False
        self.prefix = ""
        # SIGUSR1 warns of a time limit: a run with nothing to checkpoint (an evaluation) uses its
        # last minutes; a training run's handler (set_payload) checkpoints instead
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        if self.directory is not None and os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise UserError(f"--dir={self.directory} is a file, not a folder")
        found = stored = None
        if self.directory is not None and os.path.isdir(self.directory):
            self.prefix = self._prefix_for(script)
            if not getattr(args, "restart", False):
                found = latest_checkpoint(self.directory, self.prefix)
                stored = self._stored_args(found)
        if stored is not None:
            differ = differing_flags({k: v for k, v in stored.items() if k not in may_differ}, vars(args))
            if differ:
                raise UserError(f"{self.directory} holds a run of another command ({'; '.join(differ)}): "
                                "use another --dir, or --restart to start this one over")
            self.continues_folder = True
            more_epochs = "epochs" in stored and getattr(args, "epochs", None) != stored["epochs"]
            if os.path.isfile(self.file("summary.json")) and not more_epochs:
                self.state = "finished"
                return
        candidates = [p for p in (found, resume_from) if p is not None]
        if candidates:
            self.state = "continue"
            self.checkpoint_path = max(candidates, key=lambda p: _progress(p) or (-1, -1))

    def _prefix_for(self, script: str) -> str:
        """"" if the folder is this script's (or empty); "<script>-" if it holds another script's
        run, or checkpoints of unknown origin (which are left alone)."""
        if os.path.isfile(os.path.join(self.directory, f"{script}-args.json")):
            return f"{script}-"
        owner = self._read_json(os.path.join(self.directory, "args.json"))
        if owner is None:
            found = latest_checkpoint(self.directory)
            if found is None:
                return ""
            owner = self._stored_args(found)
        return "" if owner.get("script") == script else f"{script}-"

    def file(self, name: str) -> str:
        """A record of this run in its folder (``name`` with the run's prefix)."""
        return os.path.join(self.directory, self.prefix + name)

    def _stored_args(self, checkpoint: str | None) -> dict | None:
        """The settings of the run in the folder: its latest checkpoint's, else args.json's."""
        if checkpoint is not None:
            try:
                return dict(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["args"])
            except Exception as exc:
                raise UserError(f"cannot read checkpoint {checkpoint}: {type(exc).__name__}") from exc
        return self._read_json(self.file("args.json"))

    @staticmethod
    def _read_json(path: str) -> dict | None:
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path}: {exc}") from exc

    # ------------------------------------------------------------------ records
    def open_records(self, resume_epoch: int | None = None) -> None:
        """command.sh and args.json of a new run, or the command appended to the command.sh of the
        run this folder holds (its args.json is kept); metrics.csv without rows after ``resume_epoch``;
        a summary.json that more epochs make stale is removed."""
        if self.directory is None or not self.procs.is_main:
            return
        if getattr(self.args, "restart", False):
            remove_run_files(self.directory, self.prefix, self.args.script)
        if os.path.isfile(self.file("summary.json")):
            os.remove(self.file("summary.json"))
        self.record = utils.RunRecord(self.directory, vars(self.args), resume_epoch=resume_epoch,
                                      append_command=self.continues_folder, prefix=self.prefix)

    def log(self, row: dict) -> None:
        if self.record is not None:
            self.record.log(row)

    def path(self, name: str, prefixed: bool = True) -> str | None:
        """A file of the run's folder for rank 0 to write (None elsewhere, or without --dir): a
        record or picture (``prefixed``), or a file named for itself such as ``fge-161.pt``."""
        if self.directory is None or not self.procs.is_main:
            return None
        return self.file(name) if prefixed else os.path.join(self.directory, name)

    # ------------------------------------------------------------------ checkpoints
    def load(self) -> dict | None:
        """The checkpoint to continue from (state "continue"), or None."""
        if self.checkpoint_path is None:
            return None
        return utils.load_checkpoint(self.checkpoint_path)

    def set_payload(self, payload: Callable[[], dict]) -> None:
        """``payload()`` returns the script's checkpoint (``utils.model_checkpoint`` and friends)
        as of now; the run adds where it stands and the random states, and writes it."""
        self._payload = payload
        self.signals.install()

    def save(self, epoch: int, *, keep: bool, step: int = 0, partial: list[float] | None = None) -> None:
        """Write the state after ``epoch`` epochs (and ``step`` batches of the next): as
        ``checkpoint-<epoch>.pt`` if ``keep``, else as the rolling ``last.pt``."""
        rng = self.procs.gather_objects(utils.rng_state())  # every process's dropout stream
        if not self.procs.is_main or self.directory is None:
            return
        state = self._payload()
        state.update(epoch=epoch, step=step, partial=partial, rng_states=rng)
        if keep:
            utils.save_checkpoint(self.file(f"checkpoint-{epoch}.pt"), state)
            if os.path.exists(self.file(LAST)):  # the kept checkpoint is now the latest
                os.remove(self.file(LAST))
        else:
            utils.save_checkpoint(self.file(LAST), state)

    def restore_random_state(self, ckpt: dict) -> None:
        """This process's random streams from ``ckpt`` (rank r takes the r-th of the processes that wrote it)."""
        states = ckpt.get("rng_states") or [ckpt["rng_state"]]
        utils.set_rng_state(states[self.procs.rank % len(states)])

    def stop_requested(self) -> bool:
        """Whether a stop signal reached any process (all processes agree on the answer)."""
        return self.procs.any(self.signals.received is not None)

    def requeue(self, epoch: int, step: int = 0, partial: list[float] | None = None) -> None:
        """Save where the run stands and exit with EX_TEMPFAIL: the same command continues it."""
        self.save(epoch, keep=False, step=step, partial=partial)
        if self.procs.is_main:
            where = f"epoch {epoch + 1}, step {step}" if step else f"the end of epoch {epoch}"
            print(f"stopped by {self.signals.received or 'a signal'} at {where}; {self.file(LAST)} written: "
                  "start the same command again to continue", file=sys.stderr, flush=True)
        self.procs.close()
        sys.exit(EXIT_REQUEUE)

    def train_epoch(self, forward, loader, optimizer, epoch: int, *, resume: dict | None = None,
                    lr: float | None = None, lr_fn=None, regularizer=None, amp=None, scaler=None,
                    progress=None, draws: int | None = None, samples: int = 1) -> dict:
        """One training epoch (``epoch`` from 0): a constant ``lr`` or per-iteration ``lr_fn``, the
        epoch's data draws (those of epoch ``draws``, default ``epoch``), resumption within the
        epoch (``resume``: the checkpoint it stopped in), and a stop signal honoured after the
        current step; ``samples`` forward passes a step (see ``utils.train_epoch``)."""
        if lr is not None:
            utils.set_learning_rate(optimizer, lr)
        loader.set_epoch(epoch if draws is None else draws)
        start, partial = 0, None
        if resume is not None and resume.get("step") and resume["epoch"] == epoch:
            start, partial = resume["step"], resume.get("partial")
        try:
            return utils.train_epoch(forward, loader, optimizer, lr_fn=lr_fn, regularizer=regularizer, amp=amp,
                                     scaler=scaler, start_step=start, partial=partial,
                                     should_stop=self.stop_requested, progress=progress, samples=samples)
        except utils.Interrupted as stop:
            self.requeue(epoch, stop.step, stop.partial)

    def end_epoch(self, epoch: int, keep: bool) -> None:
        """After epoch ``epoch`` (from 1) and its evaluation: the rolling or kept checkpoint, then
        exit for a requeue if a stop signal came meanwhile."""
        self.save(epoch, keep=keep)
        if self.stop_requested():
            self.requeue(epoch)

    def finish(self, figures: dict) -> None:
        """summary.json, written last: from now on the run is finished."""
        if self.record is not None:
            self.record.summary(figures)
        self.signals.uninstall()


RUN_FILES = ("checkpoint-*.pt", LAST, "metrics.csv", "summary.json", "*.png", "*.npz", "curve.csv", "swa.pt",
             "aligned.pt")


def remove_run_files(directory: str, prefix: str = "", script: str = "") -> None:
    """--restart: the files an earlier run of ours wrote there (checkpoints, records, pictures;
    fge.py's snapshots too)."""
    patterns = [prefix + p for p in RUN_FILES] + (["fge-*.pt"] if script == "fge" else [])
    for pattern in patterns:
        for path in glob.glob(os.path.join(directory, pattern)):
            os.remove(path)


