"""SWA-Gaussian (Maddox et al., NeurIPS 2019): a Gaussian over the weights SGD visits in SWA's phase,
and the Bayesian model average of networks drawn from it.

``SWAG(model)`` collects, from every ``collect(model)`` (once per epoch of the SWA phase), for all
named parameters of the module in one flat float32 vector on the module's device:

- the running mean theta_bar (the SWA average; on a CPU bit for bit ``torch.optim.swa_utils``'
  average of the same models, whose CPU update is the same division);
- the running (population) variance of each weight, the diagonal: the original's
  clamp(E[theta^2] - E[theta]^2, 1e-30), kept as Welford's running variance so that no difference of
  two nearly equal float32 numbers is taken (see ``SWAG.collect``);
- with ``cov_mat`` the last K = ``max_num_models`` deviations theta_i - theta_bar_i, each from the
  running mean *after* its own update (as the original's ``collect_model``): the rows of D (K, P).

A draw (the original's ``sample_fullrank``)::

    theta = theta_bar + sqrt(scale) * (sqrt(var) * z1 + D^T z2 / sqrt(K' - 1)),  z1 ~ N(0, I_P), z2 ~ N(0, I_K')

of covariance scale * (diag(var) + D^T D / (K' - 1)); at the paper's scale 0.5 it is the paper's
(1/sqrt 2) Sigma_diag^(1/2) z1 + (1/sqrt(2 (K - 1))) D z2. K' = min(models collected, K): the
deviations kept (the original divides by K - 1 even when fewer were collected). Memory: the
low-rank SWAG holds at most K + 2 copies of the weights (mean, variance, the rows of D) and
collecting allocates nothing more (the new row serves as scratch; once K are kept, the oldest
one's memory is reused); a draw adds about 2 (``scripts/bench.py`` measures both).
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch
import torch.nn as nn

import curves
import utils
from ensembles.predictions import ProbabilityEnsemble

VAR_CLAMP = 1e-30  # the original's var_clamp: the smallest variance a weight is given when sampling
MAX_NUM_MODELS = 20  # the original's K (run_swag.py and uncertainty.py: max_num_models=20)


class SWAG:
    """The SWAG moments of ``model``'s named parameters (see the module's docstring).

    ``max_num_models``: K, the rank of the low-rank part; ``cov_mat``: keep it (else the diagonal
    only, SWAG-Diagonal). The moments live on ``device`` (default: the model's), in float32; the
    deviations as a list of rows, oldest first, each allocated when its model comes (a checkpoint
    then holds the rows collected, as the original's).
    """

    def __init__(self, model: nn.Module, max_num_models: int = MAX_NUM_MODELS, cov_mat: bool = True,
                 var_clamp: float = VAR_CLAMP, device: torch.device | str | None = None):
        if cov_mat and max_num_models < 2:
            raise ValueError(f"the low-rank part needs max_num_models >= 2 (got {max_num_models})")
        named = [(name, p) for name, p in model.named_parameters()]
        if not named:
            raise ValueError("the model has no parameters")
        self.names = [name for name, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.numel = sum(p.numel() for _, p in named)
        self.max_num_models, self.cov_mat, self.var_clamp = int(max_num_models), bool(cov_mat), float(var_clamp)
        device = torch.device(device) if device is not None else named[0][1].device
        self.n_models = 0
        self.mean = torch.zeros(self.numel, dtype=torch.float32, device=device)
        self.var = torch.zeros(self.numel, dtype=torch.float32, device=device)
        self.deviations: list[torch.Tensor] = []  # the rows of D, (P,) each, oldest first
        self._slices, offset = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            self._slices.append(slice(offset, offset + size))
            offset += size

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def rank(self) -> int:
        """The number of deviations kept, K' = min(models collected, K) (0 without ``cov_mat``)."""
        return len(self.deviations)

    def nbytes(self) -> int:
        """The bytes of the moments' tensors."""
        return sum(t.numel() * t.element_size() for t in [self.mean, self.var, *self.deviations])

    # ------------------------------------------------------------------ collecting
    def _weights(self, model: nn.Module) -> list[torch.Tensor]:
        """``model``'s parameters in this SWAG's order, by name, as flat float32 tensors on its device."""
        params = dict(model.named_parameters())
        missing = [n for n in self.names if n not in params]
        if missing or len(params) != len(self.names):
            extra = sorted(set(params) - set(self.names))
            raise ValueError(f"the model's parameters are not this SWAG's: missing {missing[:3]}, extra {extra[:3]}")
        out = []
        for name, shape in zip(self.names, self.shapes):
            p = params[name].detach()
            if tuple(p.shape) != shape:
                raise ValueError(f"parameter {name} has shape {tuple(p.shape)}, this SWAG's {shape}")
            out.append(p.to(self.device, torch.float32).reshape(-1))  # a view where it can be one
        return out

    @torch.no_grad()
    def collect(self, model: nn.Module) -> None:
        """Add the model's current weights (matched by name) to the moments.

        With n models already in, theta's deviation delta = theta - mean, then
        mean += delta / (n + 1)                       (torch's SWA update on a CPU, bit for bit)
        var = n / (n + 1) * (var + delta^2 / (n + 1))  (Welford's update of the population variance)
        and the new row of D is theta - mean, the deviation from the updated mean (the original's).
        The variance update adds non-negative terms: float32 keeps its digits where
        E[theta^2] - E[theta]^2 would cancel them (for |theta| >> its spread, as for most weights).
        """
        weights = self._weights(model)  # checked before anything changes
        n, row = self.n_models, None
        if self.cov_mat:  # the new row; once K are kept, the oldest one's memory
            full = len(self.deviations) == self.max_num_models
            row = self.deviations.pop(0) if full else torch.empty(self.numel, dtype=torch.float32, device=self.device)
        count = torch.tensor(n + 1, dtype=torch.float32, device=self.device)
        for where, theta in zip(self._slices, weights):
            mean, var = self.mean[where], self.var[where]
            # the new row holds delta meanwhile: no scratch allocated
            delta = torch.sub(theta, mean, out=row[where]) if row is not None else theta - mean
            mean.addcdiv_(delta, count)
            var.addcmul_(delta, delta, value=1.0 / (n + 1)).mul_(n / (n + 1))
            if row is not None:
                torch.sub(theta, mean, out=row[where])
        if row is not None:
            self.deviations.append(row)
        self.n_models = n + 1

    # ------------------------------------------------------------------ the Gaussian
    def variance(self) -> torch.Tensor:
        """The diagonal, clamped at ``var_clamp`` as the original samples it (a new tensor)."""
        return self.var.clamp(min=self.var_clamp)

    def deviation_matrix(self) -> torch.Tensor:
        """D, (K', P): the deviations kept, oldest first (a new tensor)."""
        if not self.cov_mat:
            raise ValueError("this SWAG was collected without the low-rank part (cov_mat=False)")
        return torch.stack(self.deviations) if self.deviations else self.mean.new_zeros(0, self.numel)

    def covariance(self, scale: float = 1.0, cov: bool | None = None) -> torch.Tensor:
        """The draws' covariance, scale * (diag(var) + D^T D / (K' - 1)), a (P, P) matrix: for tests of
        tiny models only."""
        cov = self.cov_mat if cov is None else cov
        out = torch.diag(self.variance().double())
        if cov and self.rank > 1:
            d = self.deviation_matrix().double()
            out += d.T @ d / (self.rank - 1)
        return scale * out

    @torch.no_grad()
    def sample(self, scale: float = 0.5, cov: bool | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """A flat weight vector drawn from the Gaussian (see the module's docstring), on the moments'
        device. ``cov``: with the low-rank part (default: if collected); ``scale`` 0 gives the mean
        itself. The noise is drawn on ``generator``'s device (default: the CPU's global generator) and
        moved, so a seed gives the same draw on every device."""
        if self.n_models == 0:
            raise ValueError("nothing collected yet")
        if scale < 0:
            raise ValueError(f"scale must be >= 0 (got {scale})")
        cov = self.cov_mat if cov is None else cov
        if cov and not self.cov_mat:
            raise ValueError("this SWAG was collected without the low-rank part (cov_mat=False)")
        if scale == 0:
            return self.mean.clone()
        where = generator.device if generator is not None else torch.device("cpu")
        # the diagonal part: z1 times the standard deviation (drbayes#6 multiplied by the variance)
        noise = torch.randn(self.numel, generator=generator, device=where).to(self.device)
        noise.mul_(self.variance().sqrt_())
        if cov and self.rank > 1:  # D^T z2 / sqrt(K' - 1), one row at a time: no (K', P) copy
            z2 = torch.randn(self.rank, generator=generator, device=where, dtype=torch.float64)
            for z, row in zip((z2 / math.sqrt(self.rank - 1)).tolist(), self.deviations):
                noise.add_(row, alpha=z)
        return noise.mul_(math.sqrt(scale)).add_(self.mean)

    def state_dict_of(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat vector (``sample``, ``mean``) as the model's parameters by name (views of it)."""
        return {name: vector[where].view(shape) for name, where, shape in zip(self.names, self._slices, self.shapes)}

    @torch.no_grad()
    def load_weights(self, model: nn.Module, vector: torch.Tensor) -> None:
        """Copy a flat vector into ``model``'s parameters, by name (BatchNorm buffers untouched)."""
        params = dict(model.named_parameters())
        for name, value in self.state_dict_of(vector).items():
            params[name].copy_(value)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Plain tensors, lists and numbers (``torch.load(weights_only=True)`` reads them): the moments
        and the count; ``deviations`` the K' rows of D, oldest first. The tensors are this SWAG's own
        (no copies: a checkpoint of a large model costs no memory)."""
        return {"n_models": self.n_models, "max_num_models": self.max_num_models, "cov_mat": self.cov_mat,
                "var_clamp": self.var_clamp, "names": list(self.names), "shapes": [list(s) for s in self.shapes],
                "mean": self.mean, "var": self.var, "deviations": list(self.deviations)}

    @torch.no_grad()
    def load_state_dict(self, state: dict, assign: bool = False) -> None:
        """The moments of ``state`` (a ``state_dict``), copied; with ``assign`` its tensors themselves
        where they are on this SWAG's device already (no second copy of a large model's moments:
        the state's tensors then change as this SWAG collects)."""
        for key in ("max_num_models", "cov_mat"):
            if state[key] != getattr(self, key):
                raise ValueError(f"the state has {key}={state[key]}, this SWAG {getattr(self, key)}")
        if list(state["names"]) != self.names or [tuple(s) for s in state["shapes"]] != self.shapes:
            raise ValueError("the state is for another model's parameters")
        rows = list(state["deviations"] or [])
        if len(rows) != min(int(state["n_models"]), self.max_num_models if self.cov_mat else 0):
            raise ValueError(f"the state has {len(rows)} deviations for {state['n_models']} models")

        def take(t: torch.Tensor) -> torch.Tensor:
            moved = t.to(self.device, torch.float32)
            return moved if assign or moved is not t else moved.clone()

        self.mean, self.var = take(state["mean"]), take(state["var"])
        self.deviations = [take(row) for row in rows]
        self.n_models, self.var_clamp = int(state["n_models"]), float(state["var_clamp"])

    @classmethod
    def from_state_dict(cls, model: nn.Module, state: dict, device=None, assign: bool = False) -> "SWAG":
        """A SWAG for ``model`` holding ``state`` (e.g. a checkpoint's; ``assign``: see ``load_state_dict``)."""
        swag = cls(model, state["max_num_models"], state["cov_mat"], state["var_clamp"], device)
        swag.load_state_dict(state, assign)
        return swag


# --------------------------------------------------------------------------- the Bayesian model average

class Evaluated(NamedTuple):
    """One network's figures (``nll``, ``accuracy`` in percent, ``ece``) and test probabilities (N, classes)."""

    metrics: dict
    probs: np.ndarray


def evaluate_vector(swag: SWAG, module: nn.Module, vector: torch.Tensor, bn_loader, test_loader, *,
                    amp=None, draw: int = 0, forward: Callable | None = None,
                    ece_bins: int = utils.ECE_BINS) -> Evaluated:
    """The weights ``vector`` in ``module``, BatchNorm recomputed for them on ``bn_loader`` (its
    augmentation draws number ``draw``), evaluated on ``test_loader`` (ECE of ``ece_bins`` bins)."""
    swag.load_weights(module, vector)
    forward = forward or module
    curves.recompute_batchnorm(module, forward, bn_loader, amp, draw)
    metrics, probs, _ = utils.evaluate_with_predictions(forward, test_loader, amp=amp, ece_bins=ece_bins)
    return Evaluated(metrics, probs)


class Sample(NamedTuple):
    """The ``index``-th network drawn (from 0), its own figures, and the average so far."""

    index: int
    metrics: dict
    probs: np.ndarray
    ensemble: ProbabilityEnsemble


def sample_generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator of draw ``index``: each draw its own stream, so draw i is the same whether
    the draws before it were made in this process or in a run that was stopped."""
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


def bayesian_model_average(swag: SWAG, module: nn.Module, bn_loader, test_loader, num_samples: int, *,
                           scale: float = 0.5, cov: bool | None = None, seed: int = 0, amp=None, draw: int = 0,
                           forward: Callable | None = None, ensemble: ProbabilityEnsemble | None = None,
                           start: int = 0, ece_bins: int = utils.ECE_BINS) -> Iterator[Sample]:
    """Draw networks ``start .. num_samples - 1`` from ``swag``, recompute each one's BatchNorm on
    ``bn_loader`` and add its test probabilities to ``ensemble`` (a new ``ProbabilityEnsemble`` by
    default; pass the one of a stopped run to go on with it): yields after every draw.

    Every draw's BatchNorm pass sees the same images (augmentation draw ``draw``), so draws differ
    only in their weights, and at ``scale`` 0 every draw is the mean network exactly, the SWA
    solution, whose figures the average then has.
    """
    ensemble = ensemble if ensemble is not None else ProbabilityEnsemble()
    for index in range(start, num_samples):
        vector = swag.sample(scale, cov, sample_generator(seed, index))
        metrics, probs = evaluate_vector(swag, module, vector, bn_loader, test_loader, amp=amp, draw=draw,
                                         forward=forward, ece_bins=ece_bins)
        ensemble.add(probs)
        yield Sample(index, metrics, probs, ensemble)
