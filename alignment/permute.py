"""Apply a permutation of each group (see ``groups``) to a state dict or a model.

A permutation ``perm`` of a group of n units is a (n,) index tensor in Git Re-Basin's
convention (``jnp.take(w, perm, axis)``): the permuted network's unit i is the original's
unit ``perm[i]``, in every tensor that carries the group, BatchNorm's running statistics
included. Its inverse is ``torch.argsort(perm)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from alignment.groups import Group


def identity(groups: list[Group]) -> dict[str, torch.Tensor]:
    """The identity permutation of every group."""
    return {g.name: torch.arange(g.size) for g in groups}


def random_permutation(groups: list[Group], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """A uniformly random permutation of every group."""
    return {g.name: torch.randperm(g.size, generator=generator) for g in groups}


def inverse(perms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: torch.argsort(p) for name, p in perms.items()}


def axis_indices(groups: list[Group], perms: dict[str, torch.Tensor], shapes: dict[str, torch.Size],
                 skip: tuple[str, int] | None = None) -> dict[tuple[str, int], torch.Tensor]:
    """For every (key, dim) that some group touches, the index that ``index_select`` takes along
    ``dim`` to apply all the groups' permutations there. Positions of no group stay in place.
    Keys missing from ``shapes`` are left out, and so is ``skip``, one (key, dim)."""
    out: dict[tuple[str, int], torch.Tensor] = {}
    for g in groups:
        perm = perms[g.name]
        for axis in g.axes:
            where = (axis.key, axis.dim)
            if where == skip or axis.key not in shapes:
                continue
            if where not in out:
                out[where] = torch.arange(shapes[axis.key][axis.dim])
            # new position index[i, s] takes the old position index[perm[i], s]
            out[where][axis.index.reshape(-1)] = axis.index[perm].reshape(-1)
    return out


def permute_state(state: dict, groups: list[Group], perms: dict[str, torch.Tensor], strict: bool = True) -> dict:
    """A new state dict: ``state`` with every group permuted by ``perms[group.name]``. With
    ``strict``, every tensor the groups name must be there (a whole state dict); without, a
    part of one (the parameters alone) is permuted as far as it goes."""
    shapes = {k: v.shape for k, v in state.items() if torch.is_tensor(v)}
    missing = {axis.key for g in groups for axis in g.axes} - set(shapes)
    if missing and strict:
        raise ValueError(f"the state dict lacks {', '.join(sorted(missing))}: not the model the groups were found in")
    out = dict(state)
    for (key, dim), index in axis_indices(groups, perms, shapes).items():
        out[key] = out[key].index_select(dim, index.to(out[key].device))
    return out


def permute_model(model: nn.Module, groups: list[Group], perms: dict[str, torch.Tensor]) -> nn.Module:
    """Permute ``model``'s parameters and buffers in place (returns ``model``)."""
    model.load_state_dict(permute_state(model.state_dict(), groups, perms))
    return model
