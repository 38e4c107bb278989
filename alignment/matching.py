"""Matching network B to network A: a permutation of each group of B (see ``permute``).

Weight matching (Git Re-Basin, weight_matching.py) maximises sum_l <W_l^A, P W_l^B>, the
inner product of all the parameters, over the groups' permutations P by coordinate
descent: starting from the identity, each sweep visits the groups in a fresh random
order, and for each group solves the linear assignment problem (``scipy.optimize.
linear_sum_assignment``) with the others held fixed; the cost of assigning B's unit j to
A's unit i sums, over every parameter that carries the group, the inner product of A's
slice i with B's slice j (B's other axes permuted as they stand). It stops after a sweep in
which no assignment raised the objective by more than 1e-12, or after ``max_iter`` sweeps.
Only parameters enter the cost, as in the original (its specs list flax ``params``, not
``batch_stats``); BatchNorm's running statistics are permuted with them afterwards.
Two savings change no result: a group none of whose neighbours changed since it was last
solved is not solved again (the same assignment would come out), and a parameter's share of
a cost is updated by the few units that moved since it was last computed, in float64,
rather than recomputed (late sweeps move a few percent of the units): ten times less work
on two VGG16s, the same permutations, sweep for sweep.

Activation matching (Git Re-Basin's *_activation_matching.py, REPAIR's notebooks) runs both
networks on the same training images and, for each group, solves one assignment on the
correlation matrix of the two networks' units where the group is seen (``Group.sites``:
after its nonlinearities; every spatial position of a convolutional map is a sample).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
from scipy.optimize import linear_sum_assignment

from alignment.groups import Group
from alignment.permute import identity

MAX_ITER = 100  # weight_matching(max_iter=100) in the original
SIMILARITIES = ("correlation", "inner_product")


@dataclass
class WeightMatching:
    """The result of ``weight_matching``: the permutations, the sweeps run, and whether the last
    sweep raised the objective no more (converged) rather than running out of sweeps."""

    perms: dict[str, torch.Tensor]
    sweeps: int
    converged: bool


def assignment(cost: np.ndarray) -> torch.Tensor:
    """The permutation ``perm`` maximising sum_i cost[i, perm[i]] (a linear assignment)."""
    rows, cols = linear_sum_assignment(cost, maximize=True)
    assert (rows == np.arange(len(rows))).all()  # scipy returns the rows in order for a square matrix
    return torch.as_tensor(cols, dtype=torch.long)


class _Term:
    """One parameter's share of a group's cost: A's and B's slices of the group's units, (n, k, *rest)
    with ``rest`` the parameter's other axes, and the other axes that other groups permute."""

    def __init__(self, w_a: torch.Tensor, w_b: torch.Tensor, dim: int, index: torch.Tensor, permuted: list):
        self.a = _rows(w_a, dim, index, copy=True)  # A never changes: sliced once
        self.b = _rows(w_b, dim, index, copy=False)  # B unpermuted (a view where it can be)
        self.permuted = permuted  # [(axis of self.b, (key, dim) of the parameter)]
        self.state, self.indices, self.part = None, None, None

    def product(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """(n, n) float64: sum over the slices of <A's unit i, B's unit j>, B's other axes taken by ``indices``."""
        n = self.a.shape[0]
        if self.part is not None and len(indices) == 1:
            # Only one axis permuted, and few of its places changed since the last product: add the
            # change those places make, instead of the whole product again (the same matrix up to
            # float rounding, in float64; late in the descent a sweep moves a few percent of the units).
            (axis, _), old, new = self.permuted[0], self.indices[0], indices[0]
            moved = torch.nonzero(old != new).reshape(-1)
            if len(moved) <= len(new) // 2:
                if len(moved):
                    a = self.a.index_select(axis, moved.to(self.a.device)).reshape(n, -1)
                    b_new = self.b.index_select(axis, new[moved].to(self.b.device))
                    b_old = self.b.index_select(axis, old[moved].to(self.b.device))
                    self.part = self.part + (a @ (b_new - b_old).reshape(n, -1).T).double()
                self.indices = indices
                return self.part
        b = self.b
        for (axis, _), index in zip(self.permuted, indices):
            b = b.index_select(axis, index.to(b.device))
        self.part = (self.a.reshape(n, -1) @ b.reshape(n, -1).T).double()
        self.indices = indices
        return self.part


def _rows(w: torch.Tensor, dim: int, index: torch.Tensor, copy: bool) -> torch.Tensor:
    """(n, k, *other axes): unit i's slices of ``w`` along ``dim`` (its k positions side by side)."""
    n, k = index.shape
    w = w.movedim(dim, 0)
    if k != 1 or n != w.shape[0] or not torch.equal(index[:, 0], torch.arange(n)):
        w = w.index_select(0, index.reshape(-1).to(w.device))  # else: the whole axis, in order
    w = w.reshape(n, k, *w.shape[1:])
    return w.contiguous() if copy else w


class _Costs:
    """The weight-matching cost of each group, given the current permutations of the others."""

    def __init__(self, groups: list[Group], params_a: dict, params_b: dict):
        self.groups = {g.name: g for g in groups}
        # (key, dim) -> [(group name, index)]: every group along each axis of every parameter
        self.on_axis: dict[tuple[str, int], list[tuple[str, torch.Tensor]]] = {}
        for g in groups:
            for axis in g.axes:
                if axis.key in params_a:
                    self.on_axis.setdefault((axis.key, axis.dim), []).append((g.name, axis.index))
        self.sizes = {key: params_a[key].shape for key, _ in self.on_axis}
        self.terms: dict[str, list[_Term]] = {}
        self.depends: dict[str, list[str]] = {}  # the groups on the other axes of a group's parameters
        for g in groups:
            terms = []
            for axis in g.axes:
                if axis.key not in params_a:
                    continue  # a buffer: permuted, but not part of the cost
                rank = params_a[axis.key].dim()
                # after movedim(dim, 0) and the split into (n, k): the other axis d sits at 2 + d (- 1 after dim)
                permuted = [(2 + (d if d < axis.dim else d - 1), (axis.key, d)) for d in range(rank)
                            if d != axis.dim and (axis.key, d) in self.on_axis]
                terms.append(_Term(params_a[axis.key], params_b[axis.key], axis.dim, axis.index, permuted))
            self.terms[g.name] = terms
            self.depends[g.name] = sorted({name for term in terms for _, where in term.permuted
                                           for name, _ in self.on_axis[where]})

    def cost(self, name: str, perms: dict[str, torch.Tensor], version: dict[str, int]) -> np.ndarray:
        """C[i, j] = sum over the group's parameters of <A's unit i, B's unit j>, B's other axes permuted.
        A term whose other axes did not change since it was last computed is the same matrix, kept."""
        g = self.groups[name]
        total = None
        for term in self.terms[name]:
            state = tuple(version[d] for _, where in term.permuted for d, _ in self.on_axis[where])
            if term.state != state or term.part is None:
                term.product([self._index(where, perms) for _, where in term.permuted])
                term.state = state
            total = term.part if total is None else total + term.part
        if total is None:
            return np.zeros((g.size, g.size))
        return total.cpu().numpy()

    def _index(self, where: tuple[str, int], perms) -> torch.Tensor:
        """The index along axis ``where`` that applies every group's permutation there."""
        index = torch.arange(self.sizes[where[0]][where[1]])
        for name, positions in self.on_axis[where]:
            index[positions.reshape(-1)] = positions[perms[name]].reshape(-1)
        return index


def weight_matching(groups: list[Group], params_a: dict, params_b: dict, *, seed: int = 0,
                    max_iter: int = MAX_ITER, init: dict[str, torch.Tensor] | None = None) -> WeightMatching:
    """Git Re-Basin's weight matching of ``params_b`` to ``params_a`` (parameters by name: buffers
    left out, see the module's docstring). ``seed`` fixes the random order of the groups in each sweep."""
    costs = _Costs(groups, params_a, params_b)
    perms = {k: v.clone() for k, v in (init or identity(groups)).items()}
    names = [g.name for g in groups if g.size > 1]
    rng = np.random.default_rng(seed)
    # A group's cost depends only on the permutations of the groups on its parameters' other axes:
    # when none of those changed since it was last solved, the same assignment would come out (no
    # progress, nothing changes), so it is skipped.
    version = {name: 0 for name in perms}
    solved_at: dict[str, tuple] = {}
    result = WeightMatching(perms, 0, False)
    for sweep in range(max_iter):
        progress = False
        for i in rng.permutation(len(names)):
            name = names[i]
            state = tuple(version[d] for d in costs.depends[name])
            if solved_at.get(name) == state:
                continue
            cost = costs.cost(name, perms, version)
            new = assignment(cost)
            rows = np.arange(len(new))
            old_value, new_value = cost[rows, perms[name].numpy()].sum(), cost[rows, new.numpy()].sum()
            progress = progress or new_value > old_value + 1e-12
            solved_at[name] = state
            if not torch.equal(new, perms[name]):
                perms[name] = new
                version[name] += 1
        result.sweeps = sweep + 1
        if not progress:
            result.converged = True
            break
    return result


# --------------------------------------------------------------------------- activations

class _Recorder(fx.Interpreter):
    """Runs a traced network and hands the outputs of the watched nodes to ``seen`` as they appear
    (before any later in-place operation can change them)."""

    def __init__(self, graph: fx.GraphModule, watched: set[str], seen):
        super().__init__(graph)
        self.watched, self.seen = watched, seen

    def run_node(self, n):
        value = super().run_node(n)
        if n.name in self.watched:
            self.seen(n.name, value)
        return value


def _units(value: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(samples, n): the group's channels of an activation, every spatial position a sample."""
    x = value.index_select(1, index.to(value.device)).float()
    return x.movedim(1, -1).reshape(-1, len(index))


class _Moments:
    """Sums over samples of a, b, a^2, b^2 and a b^T for one group at one site (float64 totals)."""

    def __init__(self):
        self.count, self.sums = 0, None

    def add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        batch = [a.sum(0), b.sum(0), (a * a).sum(0), (b * b).sum(0), a.T @ b]  # float32 within a batch
        batch = [t.double().cpu() for t in batch]
        self.sums = batch if self.sums is None else [s + t for s, t in zip(self.sums, batch)]
        self.count += a.shape[0]

    def similarity(self, kind: str) -> torch.Tensor:
        sa, sb, saa, sbb, sab = (s / self.count for s in self.sums)
        if kind == "inner_product":
            return sab  # E[a b], the MLP scripts' E_ab()
        cov = sab - torch.outer(sa, sb)
        std = torch.outer((saa - sa * sa).clamp(min=0).sqrt(), (sbb - sb * sb).clamp(min=0).sqrt())
        # Pearson correlation; dead (constant) units get 0, as the original's nan_to_num does
        return torch.where(std > 0, cov / std.clamp(min=1e-300), torch.zeros_like(cov))


def activation_similarities(groups: list[Group], graph_a: fx.GraphModule, graph_b: fx.GraphModule,
                            loader: Iterable, similarity: str = "correlation",
                            autocast=None) -> dict[str, torch.Tensor]:
    """For each group, the (n, n) similarity of A's units (rows) and B's (columns), summed over its
    sites: ``graph_a`` and ``graph_b`` are the two networks traced (``analyse``'s graph for A,
    ``torch.fx.symbolic_trace(model_b)``). ``loader`` yields (images, labels)."""
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r} (choose from {', '.join(SIMILARITIES)})")
    sites = {}  # node -> [(group name, index)]
    for g in groups:
        for site in g.sites:
            sites.setdefault(site.node, []).append((g.name, site.index))
    moments = {(g.name, s.node): _Moments() for g in groups for s in g.sites}
    kept: dict[tuple[str, str], torch.Tensor] = {}

    def seen_a(node, value):
        for name, index in sites[node]:
            kept[(name, node)] = _units(value, index)

    def seen_b(node, value):
        for name, index in sites[node]:
            moments[(name, node)].add(kept.pop((name, node)), _units(value, index))

    modes = graph_a.training, graph_b.training
    graph_a.eval()
    graph_b.eval()
    try:
        with torch.no_grad():
            for x, _ in loader:
                with autocast() if autocast else contextlib.nullcontext():
                    _Recorder(graph_a, set(sites), seen_a).run(x)
                    _Recorder(graph_b, set(sites), seen_b).run(x)
    finally:
        graph_a.train(modes[0])
        graph_b.train(modes[1])
    out = {}
    for g in groups:
        parts = [moments[(g.name, s.node)].similarity(similarity) for s in g.sites if moments[(g.name, s.node)].count]
        out[g.name] = sum(parts) if parts else torch.zeros(g.size, g.size, dtype=torch.float64)
    return out


def activation_matching(groups: list[Group], graph_a: fx.GraphModule, graph_b: fx.GraphModule,
                        loader: Iterable, similarity: str = "correlation", autocast=None) -> dict[str, torch.Tensor]:
    """One assignment per group on ``activation_similarities``: the permutations of B's groups."""
    sims = activation_similarities(groups, graph_a, graph_b, loader, similarity, autocast)
    return {g.name: assignment(sims[g.name].numpy()) if g.size > 1 else torch.arange(g.size) for g in groups}


def parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """A model's parameters by state-dict name, detached: what weight matching compares."""
    return {name: p.detach() for name, p in model.named_parameters()}
