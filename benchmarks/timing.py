"""Timing two or more contenders side by side: interleaved rounds, device synchronisation, the
best time of each or the median of paired ratios, and the FLOPs of a step."""
from __future__ import annotations

import statistics
import time

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def race(contenders: dict, repeats: int, device: torch.device, warm_ups: dict | None = None) -> dict:
    """Best seconds of each ``name: fn`` over ``repeats`` interleaved runs, after one warm-up each."""
    return {name: min(times) for name, times in race_rounds(contenders, repeats, device, warm_ups).items()}


def race_rounds(contenders: dict, repeats: int, device: torch.device, warm_ups: dict | None = None) -> dict:
    """Seconds of each ``name: fn`` in each of ``repeats`` rounds (every contender once a round,
    in order), after one warm-up each: ``fn`` itself, or ``warm_ups[name]`` where given (a few
    batches, where a whole run is an epoch of a large network)."""
    for name, fn in contenders.items():
        (warm_ups or {}).get(name, fn)()
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(times: dict, name: str, baseline: str, per: int = 1) -> float:
    """The median over rounds of ``name``'s time over ``per`` times ``baseline``'s in the same round.

    For overheads of a few percent: a shared machine's load drifts by more than that from one
    round to the next, and moves both runs of a round alike, so the ratio within a round
    cancels it, and the median ignores the rounds a burst hit. (The ratio of the best times
    compares two lucky runs taken at different moments.)
    """
    return statistics.median(t / (per * b) for t, b in zip(times[name], times[baseline]))


def with_threads(fn, threads: int | None):
    """``fn`` run with ``threads`` torch threads (None: as many as now)."""
    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(threads or before)
        try:
            fn()
        finally:
            torch.set_num_threads(before)
    return run


def training_flops(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:  # forward and backward matmuls and convolutions
        step()
    return float(counter.get_total_flops())

