"""REPAIR (Jordan et al., ICLR 2023): undo the variance collapse of an interpolated network.

Between two aligned networks A and B, the weights (1 - alpha) A + alpha B give hidden units
whose activations have far less variance than the endpoints' (the collapse REPAIR names).
For a network without BatchNorm, REPAIR resets the statistics of every channel of every
hidden layer's output (the pre-activations; the classifier's logits are left alone, as in
REPAIR's VGG11 notebook) to the interpolation of the endpoints' statistics, measured on
training images:

    goal mean = (1 - alpha) mu_A + alpha mu_B,   goal std = (1 - alpha) sigma_A + alpha sigma_B,

and then folds the rescaling into the layer's weights and bias. This is the notebooks'
procedure (Train-Merge-REPAIR-VGG11.ipynb, ResetConv and fuse_conv_bn) without the temporary
BatchNorm modules: the statistics are BatchNorm's running statistics in training mode with
``momentum=None``, i.e. the average over the batches of each batch's mean and unbiased
variance (weighted by batch size here, as ``utils.update_bn``: the same for equal batches);
in the measuring pass each layer's output is normalised with its batch's statistics and
given the goal's (gamma = sqrt(goal std^2 + eps), beta = goal mean), so the later layers are
measured as they will be once repaired; afterwards W <- W * gamma / sqrt(var + eps) and
b <- beta + (b - mean) * gamma / sqrt(var + eps), row by row. Networks with BatchNorm need no
REPAIR: recomputing their BatchNorm statistics at each point does the same
(``utils.update_bn``).
"""
from __future__ import annotations

import contextlib
from typing import Iterable

import torch
import torch.nn as nn

EPS = 1e-5  # nn.BatchNorm2d's eps, which REPAIR's BatchNorm layers use, and set_stats' goal_var + 1e-5


def repair_layers(symmetries) -> list[str]:
    """The layers REPAIR rescales: every convolution and linear layer but those that give the
    network's outputs (``alignment.analyse(model, example).layers`` minus ``output_layers``)."""
    return [name for name in symmetries.layers if name not in symmetries.output_layers]


def _check(model: nn.Module, layers: list[str]) -> list[nn.Module]:
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise ValueError("REPAIR is for networks without BatchNorm: recompute the BatchNorm statistics instead")
    modules = [model.get_submodule(name) for name in layers]
    for name, m in zip(layers, modules):
        if not isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) or m.bias is None:
            raise ValueError(f"REPAIR rescales convolution and linear layers with a bias; {name} is "
                             f"{type(m).__name__}{'' if m.bias is None else ' with a bias'}")
    return modules


class _Running:
    """The average over batches of each channel's batch mean and unbiased batch variance."""

    def __init__(self):
        self.mean = self.var = None
        self.count = 0

    def add(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add a layer output (batch, channels, ...); returns its batch mean and biased variance."""
        dims = [0] + list(range(2, y.dim()))
        y = y.float()
        mean, var = y.mean(dims), y.var(dims, unbiased=False)
        n = y.numel() // y.shape[1]
        unbiased = var * n / max(n - 1, 1)
        b = y.shape[0]
        if self.mean is None:
            self.mean, self.var = mean.clone(), unbiased.clone()
        else:  # running = (count * running + b * batch) / (count + b)
            self.mean += (mean - self.mean) * (b / (self.count + b))
            self.var += (unbiased - self.var) * (b / (self.count + b))
        self.count += b
        return mean, var


def _channel_view(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return t.view(1, -1, *([1] * (y.dim() - 2)))


def _pass(model: nn.Module, modules, loader: Iterable, hook_for, autocast) -> None:
    handles = [m.register_forward_hook(hook_for(i)) for i, m in enumerate(modules)]
    was_training = model.training
    model.eval()  # REPAIR's models have no dropout; here dropout stays off while measuring
    try:
        with torch.no_grad():
            for x, _ in loader:
                with autocast() if autocast else contextlib.nullcontext():
                    model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def channel_statistics(model: nn.Module, layers: list[str], loader: Iterable,
                       autocast=None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's per-channel (mean, variance) of its outputs over ``loader``'s images (see the
    module's docstring for which average); ``autocast``: a callable giving a context manager."""
    modules = _check(model, layers)
    running = [_Running() for _ in modules]

    def hook_for(i):
        def hook(module, inputs, output):
            running[i].add(output)
        return hook

    _pass(model, modules, loader, hook_for, autocast)
    if any(r.count == 0 for r in running):
        raise ValueError("no images to measure the statistics on")
    return {name: (r.mean, r.var) for name, r in zip(layers, running)}


def goal_statistics(stats_a: dict, stats_b: dict, alpha: float) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(mean, std) of each channel at ``alpha``: the endpoints' means and standard deviations interpolated."""
    return {name: ((1 - alpha) * mean_a + alpha * stats_b[name][0],
                   (1 - alpha) * var_a.sqrt() + alpha * stats_b[name][1].sqrt())
            for name, (mean_a, var_a) in stats_a.items()}


def repair(model: nn.Module, goal: dict[str, tuple[torch.Tensor, torch.Tensor]], loader: Iterable,
           autocast=None) -> nn.Module:
    """Rescale ``model``'s layers (the keys of ``goal``, from ``goal_statistics``) in place so that
    each channel's outputs have the goal's mean and std on ``loader``'s images; returns ``model``."""
    layers = list(goal)
    modules = _check(model, layers)
    running = [_Running() for _ in modules]
    gammas = [(goal[name][1].float() ** 2 + EPS).sqrt() for name in layers]
    betas = [goal[name][0].float() for name in layers]

    def hook_for(i):
        def hook(module, inputs, output):
            mean, var = running[i].add(output)  # then normalised as BatchNorm does in training mode
            gamma, beta = gammas[i].to(output.device), betas[i].to(output.device)
            scaled = (output.float() - _channel_view(mean, output)) / _channel_view((var + EPS).sqrt(), output)
            return (scaled * _channel_view(gamma, output) + _channel_view(beta, output)).to(output.dtype)
        return hook

    _pass(model, modules, loader, hook_for, autocast)
    with torch.no_grad():
        for m, r, gamma, beta in zip(modules, running, gammas, betas):
            if r.count == 0:
                raise ValueError("no images to measure the statistics on")
            scale = (gamma.to(r.var.device) / (r.var + EPS).sqrt())  # fuse_conv_bn's gamma / bn_std
            m.weight.mul_(scale.to(m.weight).view(-1, *([1] * (m.weight.dim() - 1))))
            m.bias.copy_((beta.to(r.mean.device) + scale * (m.bias.float() - r.mean)).to(m.bias))
    return model
