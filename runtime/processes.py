"""A run's processes: one, or torchrun's; their devices; their precision.

- ``Processes``: this process's rank among ``torchrun``'s (NCCL on GPUs, gloo on CPUs), its
  device, DistributedDataParallel, and flags and objects shared between the processes.
  Only rank 0 writes and prints.
- ``start_processes``: joins torchrun's processes, picks the device, settles ``--amp``'s type.
  On a CPU, malloc keeps freed memory for the next step (``keep_freed_cpu_memory``).
- ``autocast_type`` and ``grad_scaler``: what ``--amp`` means on the device.
"""
from __future__ import annotations

import datetime
import inspect
import os
import platform
import sys

import torch
import torch.distributed as dist
import torch.nn as nn

from runtime.errors import UserError


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
    else:
        # as the original scripts do: cuDNN times its algorithms on each new shape once and keeps the
        # fastest (the shapes of a run repeat: a batch, the short last one, the evaluation's)
        torch.backends.cudnn.benchmark = True
    # checked before joining the others: every process fails alike, and none waits for the rest
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
        if device.type == "cpu" and args.amp_dtype and procs.is_main and emulated_on_this_cpu(args.amp_dtype):
            print(f"warning: --amp: this CPU computes no {args.amp_dtype} natively (none of "
                  f"{', '.join(NATIVE_HALF[args.amp_dtype])} in /proc/cpuinfo), so it is emulated, many times "
                  "slower than fp32 (a VGG16 epoch: 15x on an AVX2 EPYC); leave --amp off on this machine",
                  flush=True)
    return procs


# the x86 CPU flags (/proc/cpuinfo) of each half precision's native arithmetic, oneDNN's kernels'
NATIVE_HALF = {"bfloat16": ("avx512_bf16", "amx_bf16"), "float16": ("avx512_fp16", "amx_fp16")}


def cpu_info() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ("model name", "flags", ...), as a VM shows them
    (a machine's processors are alike); empty where there is no such file."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():  # the first processor's block ends
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo's), else what the platform module says."""
    return cpu_info().get("model name") or platform.processor() or platform.machine()


# the CPU features oneDNN's kernels choose by: AVX2, AVX-512, its bfloat16 dot products, AMX's tiles
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_isa() -> list[str]:
    """Which of ISA_FLAGS /proc/cpuinfo lists (bfloat16 is emulated without the last three)."""
    flags = set(cpu_info().get("flags", "").split())
    return [f for f in ISA_FLAGS if f in flags]


def emulated_on_this_cpu(dtype: str) -> bool:
    """Whether this x86 CPU lacks every flag of NATIVE_HALF[dtype] (False where that cannot be told:
    other architectures, no /proc/cpuinfo)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    flags = cpu_info().get("flags")
    return flags is not None and not set(flags.split()) & set(NATIVE_HALF[dtype])


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
