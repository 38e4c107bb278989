"""The CUDA paths against the CPU's: a training step, the data pipeline on the device, mixed
precision with and without the gradient scaler, a curve's forward and backward. Marked ``gpu``
(``pytest -m gpu tests/test_gpu.py``, which scripts/gpu_check.sh runs); without CUDA each one
skips and says why."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import data
import models
import utils
from curves import CurveModel

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: torch.cuda.is_available() is False")]

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def no_tf32():
    """fp32 as the CPU computes it: TF32 matmuls and convolutions (10-bit mantissas) would differ by 1e-3."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def batch(n: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def network(name: str, device: torch.device, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.build_model(name, 10).to(device)


def stand_in(n_train: int = 96, n_test: int = 40) -> data.Dataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_train + n_test, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (n_train + n_test,), generator=generator)
    return data.Dataset("CIFAR10", data.ImageSet(images[:n_train], labels[:n_train]),
                        data.ImageSet(images[n_train:], labels[n_train:]), 10, True, padding=4, flip=True)


@pytest.mark.parametrize("name", ["ConvFC", "PreResNet20"])
def test_a_training_step_on_cuda_is_the_cpus(name):
    """Two SGD steps of the scripts' loop (fused SGD, BatchNorm in training mode) from the same
    weights on the same batches: the same weights, to the rounding of another summation order
    (cuDNN's and cuBLAS's kernels; an error of the device path is off by percents)."""
    x, y = batch()
    after = {}
    for key, device in (("cpu", CPU), ("cuda", CUDA)):
        model = network(name, device)
        optimizer = utils.sgd(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        utils.train_epoch(model, [(x.to(device), y.to(device))] * 2, optimizer)
        after[key] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    for key, value in after["cpu"].items():
        assert torch.allclose(after["cuda"][key].float(), value.float(), rtol=1e-3, atol=1e-4), key


def test_the_loader_keeps_its_tensors_on_the_device_and_draws_the_cpus_batches():
    dataset = stand_in()
    on = {key: data.make_loaders(dataset, 32, "VGG", device=device, seed=3) for key, device in (("cpu", CPU), ("cuda", CUDA))}
    for loader in on["cuda"].values():
        assert loader.images.device == loader.labels.device == CUDA
    for name in ("train", "train_augmented", "test"):
        for (xc, yc), (xg, yg) in zip(on["cpu"][name], on["cuda"][name], strict=True):
            assert xg.device == yg.device == CUDA and xg.dtype == torch.float32
            # the same crops, flips and order: the random draws are the CPU's on both
            assert torch.equal(yg.cpu(), yc) and torch.allclose(xg.cpu(), xc, atol=1e-6), name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_trains_and_the_scaler_skips_no_step(dtype):
    """--amp on a small MLP: the loss falls; in float16 the gradient scaler (as runtime.grad_scaler
    makes it) finds no overflow, so its scale never drops and every step is taken."""
    x, y = batch(64)
    x, y = x.to(CUDA), y.to(CUDA)
    model = network("MLP", CUDA)
    optimizer = utils.sgd(model.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    first = utils.train_epoch(model, [(x, y)], optimizer, amp=dtype, scaler=scaler)["loss"]
    for _ in range(20):
        last = utils.train_epoch(model, [(x, y)], optimizer, amp=dtype, scaler=scaler)["loss"]
    assert last < 0.5 * first
    if scaler is not None:
        assert scaler.get_scale() == torch.amp.GradScaler("cuda").get_scale()  # 2**16: never halved
    with utils.autocast(CUDA, dtype):
        assert model(x).dtype == dtype


def test_a_curves_forward_and_backward_on_cuda_are_the_cpus():
    """CurveModel's weights at t (its own autograd function, Combine), the module run with them,
    and the gradients of the free bend and of the L2 term: on CUDA as on the CPU."""
    x, y = batch(16)
    grads, outputs = {}, {}
    for key, device in (("cpu", CPU), ("cuda", CUDA)):
        torch.manual_seed(0)
        curve = CurveModel(models.build_model("ConvFC", 10), "Bezier", 3).to(device)
        for k in (0, 2):  # the fixed ends; the free middle bend starts halfway between them
            curve.load_bend(k, network("ConvFC", device, seed=k).state_dict())
        curve.init_linear()
        curve.train()
        logits = curve(x.to(device), 0.3)
        loss = F.cross_entropy(logits, y.to(device)) + curve.l2(5e-4)
        loss.backward()
        outputs[key] = logits.detach().cpu()
        grads[key] = [p.grad.detach().cpu() for p in curve.parameters() if p.grad is not None]
    assert torch.allclose(outputs["cuda"], outputs["cpu"], rtol=1e-4, atol=1e-5)
    assert len(grads["cuda"]) == len(grads["cpu"]) > 0
    for g, c in zip(grads["cuda"], grads["cpu"]):
        assert torch.allclose(g, c, rtol=1e-3, atol=1e-5)


def test_the_scripts_let_cudnn_choose_its_fastest_algorithms(monkeypatch):
    """runtime.start_processes on a GPU sets cudnn.benchmark, as the original scripts do."""
    import argparse

    import runtime

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    procs = runtime.start_processes(argparse.Namespace(device="cuda"))
    assert procs.device.type == "cuda" and torch.backends.cudnn.benchmark
