"""The figures measured in processes of their own: data parallelism over gloo, and SWAG's memory."""
from __future__ import annotations

import os
import time
from dataclasses import replace

import torch

import data
import ensembles
import models
import runtime
import utils
from benchmarks.common import head, model_and_sgd
from benchmarks.reference import BATCH


def bench_data_parallel(root: str, images: int, repeats: int) -> dict:
    """ConvFC training on the CPU at the same global batch of 128: one process with every core's
    threads, against two gloo processes (torch.distributed, DistributedDataParallel) with half the
    threads each and 64 images of every batch each. A report, not a goal: on two cores the
    processes share the cores one process would use, and only the gradient exchange differs."""
    import torch.multiprocessing as mp

    figures = {}
    for world in (1, 2):
        context = mp.get_context("spawn")
        results = context.SimpleQueue()
        port = free_port()
        mp.spawn(_data_parallel_worker, args=(world, root, images, repeats, port, results), nprocs=world)
        figures[f"data_parallel_images_per_s_{world}_process"] = images / results.get()
    figures["data_parallel_speedup_2_processes"] = (figures["data_parallel_images_per_s_2_process"]
                                                    / figures["data_parallel_images_per_s_1_process"])
    return figures


def _data_parallel_worker(rank: int, world: int, root: str, images: int, repeats: int, port: int, results) -> None:
    import torch.distributed as dist

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    runtime.keep_freed_cpu_memory()  # as every script's process on a CPU
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    dataset = data.load_dataset("CIFAR10", root, use_test=True, download=False)
    dataset = replace(dataset, train=head(dataset.train, images))
    loader = data.make_loaders(dataset, BATCH, "VGG", rank=rank, world_size=world)["train"]
    model, optimizer = model_and_sgd("ConvFC", torch.device("cpu"))
    forward = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    best = float("inf")
    for i in range(repeats + 1):  # the first is the warm-up
        started = time.perf_counter()
        utils.train_epoch(forward, loader, optimizer)
        if i:
            best = min(best, time.perf_counter() - started)
    if rank == 0:
        results.put(best)
    if world > 1:
        dist.destroy_process_group()


def bench_swag_memory(device: torch.device, tiny: bool) -> dict:
    """The bytes of the low-rank SWAG (K = 20) of WideResNet28x10 (36.5M parameters) against the
    weights' own: the collector's tensors, and what its process allocates while it is made and
    collects K + 1 snapshots of the built model (no training; the last one reuses the oldest
    row), then while it draws one network: the peak resident memory's growth on the CPU (in a
    fresh process, whose peak is then SWAG's), the peak of allocated memory on a GPU.
    Goal: at most K + 2 copies of the weights while collecting. Copies are given to 4 decimals (a
    ten-thousandth of WideResNet28x10's weights is 14.6 kB: the allocator's bookkeeping of the rows,
    not tensors); ``swag_wrn28x10_peak_extra_bytes`` is the growth beyond the tensors' bytes, exactly.
    ``tiny``: an MLP, for the tests."""
    import torch.multiprocessing as mp

    name, k = ("MLP" if tiny else "WideResNet28x10"), ensembles.swag.MAX_NUM_MODELS
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    worker = context.Process(target=_swag_memory_worker, args=(name, k, str(device), results))
    worker.start()
    figures = results.get()
    worker.join()
    weights, key = figures.pop("weights_bytes"), "swag_wrn28x10_"
    figures.update({key + "model": name, key + "max_num_models": k, key + "weights_bytes": weights,
                    key + "peak_extra_bytes": figures[key + "peak_bytes"] - figures[key + "bytes"],
                    key + "copies_of_weights": round(figures[key + "bytes"] / weights, 4),
                    key + "peak_copies_of_weights": round(figures[key + "peak_bytes"] / weights, 4),
                    key + "sample_peak_copies_of_weights": round(figures[key + "sample_peak_bytes"] / weights, 4)})
    return figures


def _swag_memory_worker(name: str, k: int, device: str, results) -> None:
    import resource

    device = torch.device(device)
    torch.manual_seed(0)
    model = models.build_model(name, 10).to(device)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    page = os.sysconf("SC_PAGE_SIZE")

    def resident() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    warm = torch.nn.Linear(4, 4).to(device)  # the kernels' code paged in before measuring: not SWAG's memory
    collector = ensembles.SWAG(warm, 2)
    for _ in range(3):
        collector.collect(warm)
    collector.sample(0.5)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = resident()
    def peak() -> int:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) - before
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before  # ru_maxrss: KiB

    swag = ensembles.SWAG(model, k, cov_mat=True)
    with torch.no_grad():
        for step in range(k + 1):
            for p in model.parameters():
                p.add_(1e-3 * (step + 1))  # another point of the trajectory, in place
            swag.collect(model)
    collecting = peak()
    swag.sample(0.5, generator=torch.Generator().manual_seed(0))
    results.put({"weights_bytes": float(weights), "swag_wrn28x10_bytes": float(swag.nbytes()),
                 "swag_wrn28x10_peak_bytes": float(collecting), "swag_wrn28x10_sample_peak_bytes": float(peak())})


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

