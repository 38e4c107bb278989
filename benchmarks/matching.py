"""Git Re-Basin's weight matching of two networks (align.py --method weights)."""
from __future__ import annotations

import time

import torch

import alignment
import models
from benchmarks.timing import sync


def bench_weight_matching(name: str, device, repeats: int) -> dict:
    """Git Re-Basin's weight matching of two random networks (align.py --method weights): seconds of
    the coordinate descent until a sweep gains nothing (best of ``repeats``; on a CPU also with one
    thread, which a machine shared with other programs favours), and of finding the groups."""
    torch.manual_seed(0)
    a, b = (models.build_model(name, 10).to(device) for _ in range(2))
    sync(device)
    start = time.perf_counter()
    groups = alignment.find_groups(a, torch.zeros(1, 3, 32, 32, device=device))
    figures = {"weight_matching_vgg16_groups_s": time.perf_counter() - start, "weight_matching_model": name}
    params_a, params_b = alignment.parameters(a), alignment.parameters(b)
    threads = torch.get_num_threads()
    for suffix, count in [("", threads)] + ([("_1_thread", 1)] if device.type == "cpu" else []):
        torch.set_num_threads(count)
        try:
            best = float("inf")
            for _ in range(repeats):  # no warm-up: nothing is compiled, and a run takes seconds
                sync(device)
                start = time.perf_counter()
                sweeps = alignment.weight_matching(groups, params_a, params_b, seed=0).sweeps
                sync(device)
                best = min(best, time.perf_counter() - start)
        finally:
            torch.set_num_threads(threads)
        figures[f"weight_matching_vgg16_s{suffix}"] = best
    figures["weight_matching_vgg16_sweeps"] = float(sweeps)
    return figures

