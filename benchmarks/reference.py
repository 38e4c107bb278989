"""The original code's approach, the baseline of every figure: torchvision's CIFAR10 dataset with PIL
transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize) in a torch
DataLoader, fp32, ``torch.optim.SGD`` and an ``.item()`` per step (dnn-mode-connectivity's and
swa's utils.train and utils.test)."""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T

import data

BATCH = 128  # the original scripts' --batch_size
MEAN, STD = data.NORMALISATIONS["VGG"]


def write_cifar(root: str, n_train: int, n_test: int) -> str:
    """Random CIFAR-10-shaped python batches under ``root/cifar-10-batches-py``, where both sides read them."""
    data.write_random_cifar(os.path.join(root, "cifar-10-batches-py"), "CIFAR10", n_train, n_test)
    return root


class ReferenceCIFAR10(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR10 reading our files: its __getitem__ (PIL and transforms) is the baseline."""

    def _check_integrity(self):  # our random files have no official checksums
        return True

    def _load_meta(self):
        self.classes = [str(i) for i in range(10)]


def reference_dataset(root: str, train: bool, augment: bool) -> ReferenceCIFAR10:
    steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []
    transform = T.Compose(steps + [T.ToTensor(), T.Normalize(MEAN, STD)])
    return ReferenceCIFAR10(root, train=train, transform=transform, download=False)


def reference_loader(dataset, images: int, workers: int, shuffle: bool, persistent: bool = True):
    """The original's DataLoader of the first ``images`` of ``dataset`` (all, if it has fewer).
    ``persistent``: its workers are kept from one pass to the next, so that a warm-up pass starts
    them; the original starts them at every epoch, which the epoch figures keep (``persistent=False``)."""
    subset = torch.utils.data.Subset(dataset, range(min(images, len(dataset))))
    return torch.utils.data.DataLoader(subset, batch_size=BATCH, shuffle=shuffle, num_workers=workers,
                                       persistent_workers=persistent and workers > 0)


def reference_train_epoch(model, loader, optimizer, device, lr_fn=None):
    """The original code's loop: fp32, and two ``.item()`` (host syncs) per step. ``lr_fn(fraction)``:
    the rate set before each step from the fraction of the epoch done (FGE's cyclic schedule, its
    utils.train's ``lr_schedule``)."""
    model.train()
    loss_sum = correct = 0.0
    for i, (x, y) in enumerate(loader):
        if lr_fn is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_fn(i / len(loader))
        x, y = x.to(device), y.to(device)
        output = model(x)
        loss = F.cross_entropy(output, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(x)
        correct += (output.argmax(1) == y).sum().item()
    return loss_sum, correct


@torch.no_grad()
def reference_evaluate(forward, loader, device):
    loss_sum = correct = 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        output = forward(x)
        loss_sum += F.cross_entropy(output, y).item() * len(x)
        correct += (output.argmax(1) == y).sum().item()
    return loss_sum, correct


@torch.no_grad()
def reference_predictions(model, loader, device):
    """The original's utils.predictions (fge.py's ensemble): softmax per batch, copied to the host as
    numpy, concatenated."""
    model.eval()
    probs = [F.softmax(model(x.to(device)), dim=1).cpu().numpy() for x, _ in loader]
    return np.vstack(probs)


def reference_moving_average(average, model, alpha: float) -> None:
    """swa's utils.moving_average: each parameter of the average moved by ``alpha`` towards the model's."""
    for p_avg, p in zip(average.parameters(), model.parameters()):
        p_avg.data *= 1.0 - alpha
        p_avg.data += p.data * alpha


@torch.no_grad()
def reference_bn_update(loader, model, device) -> None:
    """swa's utils.bn_update: BatchNorm's running statistics reset, then one pass over ``loader``
    with each layer's momentum b / (n + b) (a running mean over the batches seen); the momenta
    restored after."""
    momenta = {m: m.momentum for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    if not momenta:
        return
    model.train()
    for m in momenta:
        m.reset_running_stats()
    n = 0
    for x, _ in loader:
        b = x.size(0)
        for m in momenta:
            m.momentum = b / (n + b)
        model(x.to(device))
        n += b
    for m, momentum in momenta.items():
        m.momentum = momentum
