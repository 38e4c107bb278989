"""Which machine a bench ran on, and how busy other programs kept it."""
from __future__ import annotations

import os
import platform

import torch

import runtime.processes


def cpu_info() -> dict:
    """The CPU's model and which of runtime's ISA_FLAGS it has (/proc/cpuinfo's flags, as a VM exposes
    them), and the vector ISA torch's own CPU kernels dispatch to."""
    return {"cpu_model": runtime.processes.cpu_model(), "cpu_isa": runtime.processes.cpu_isa(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def machine(device: torch.device) -> dict:
    cpu = cpu_info()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu["cpu_model"]
    return {"device": name, "device_type": device.type, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(), **cpu}


def busy_cpu_seconds() -> float | None:
    """CPU seconds spent by everything on the machine so far (Linux), to tell how busy it was."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system

