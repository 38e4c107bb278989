"""CurveModel: any ``nn.Module`` made into a curve phi(t) = sum_k c_k(t) w_k in its weight space.

The module itself is unchanged. Its parameters are taken out of it (set to None)
and replaced by ``num_bends`` bends, each a ``Bend`` holding one tensor per
parameter: trainable parameters for the free bends, buffers for the fixed
endpoints. A forward pass at t computes every parameter's weights once,
sum_k c_k(t) w_k, and runs the module on them with ``torch.func.functional_call``.
The module's buffers (BatchNorm running statistics) are its own, shared by all
t: recompute them at each evaluated t with
``utils.update_bn(curve, loader, forward=lambda x: curve(x, t))``.

Checkpoints are by name: ``state_dict()`` holds ``bends.<k>.<parameter name>``
for every bend k and the module's buffers as ``module.<name>``, so a bend is
imported from (or exported to) a plain model state dict by parameter name.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.func import functional_call

from curves.coefficients import CURVES


class Bend(nn.Module):
    """One bend: a tensor per parameter of the base module, saved under the parameter's name."""

    def __init__(self, names: list[str], tensors: list[torch.Tensor], trainable: bool):
        super().__init__()
        self.names, self.trainable = list(names), trainable
        for i, tensor in enumerate(tensors):
            if trainable:
                self.register_parameter(f"p{i}", nn.Parameter(tensor.detach().clone()))
            else:  # a fixed endpoint: not a parameter, so never in an optimizer
                self.register_buffer(f"p{i}", tensor.detach().clone(), persistent=False)

    def tensors(self) -> list[torch.Tensor]:
        return [getattr(self, f"p{i}") for i in range(len(self.names))]

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        for name, tensor in zip(self.names, self.tensors()):
            destination[prefix + name] = tensor if keep_vars else tensor.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        with torch.no_grad():
            for name, tensor in zip(self.names, self.tensors()):
                value = state_dict.get(prefix + name)
                if value is None:
                    missing_keys.append(prefix + name)
                elif value.shape != tensor.shape:
                    error_msgs.append(f"size mismatch for {prefix + name}: {tuple(value.shape)} in the "
                                      f"state, {tuple(tensor.shape)} in the curve")
                else:
                    tensor.copy_(value)
        if strict:
            known = {prefix + name for name in self.names}
            unexpected_keys.extend(k for k in state_dict if k.startswith(prefix) and k not in known)


class _Combine(torch.autograd.Function):
    """phi = sum_k c_k w_k for every parameter at once, and sq = 0.5 * ||phi||^2.

    One node with a hand-written backward, because autograd's own would allocate a
    temporary per term: here dL/dw_j = c_j * (dL/dphi + dL/dsq * phi) for each
    free bend j (the L2 term's gradient is fused in). ``torch._foreach`` ops keep
    the per-parameter work to a few kernel calls. Coefficients are Python floats.
    """

    @staticmethod
    def forward(ctx, fixed_coeffs, fixed, free_coeffs, num_params, *free):
        ctx.set_materialize_grads(False)
        bends = list(fixed) + [list(free[j:j + num_params]) for j in range(0, len(free), num_params)]
        phi = None
        for c, tensors in zip(list(fixed_coeffs) + list(free_coeffs), bends):
            if phi is None:
                phi = torch._foreach_mul(tensors, c)
            else:
                torch._foreach_add_(phi, tensors, alpha=c)
        sq = 0.5 * torch.stack(torch._foreach_norm(phi)).square().sum()
        ctx.free_coeffs = free_coeffs
        ctx.save_for_backward(*phi)
        return (sq, *phi)

    @staticmethod
    def backward(ctx, grad_sq, *grad_phi):
        phi = ctx.saved_tensors
        grad_phi = [torch.zeros_like(p) if g is None else g for p, g in zip(phi, grad_phi)]
        if grad_sq is not None:  # d(sq)/d(phi) = phi
            total = torch._foreach_mul(phi, grad_sq)
            torch._foreach_add_(total, grad_phi)
        else:
            total = None
        grads = []
        for i, c in enumerate(ctx.free_coeffs):
            if total is not None and i == len(ctx.free_coeffs) - 1:
                torch._foreach_mul_(total, c)  # the last free bend takes the buffer: one allocation fewer
                grads += total
            else:
                grads += torch._foreach_mul(grad_phi if total is None else total, c)
        return (None, None, None, None, *grads)


class CurveModel(nn.Module):
    """A curve of ``num_bends`` bends through the weight space of ``module`` (which it takes over).

    All bends start as copies of the module's current parameters; set them with
    ``load_bend`` and ``init_linear``. ``fix_start`` / ``fix_end``: the end bends
    are buffers, never trained. ``forward(x, t)`` runs the module at t; in training
    mode with t None, t ~ U(0, 1) is drawn from the global torch RNG (one per batch).
    """

    def __init__(self, module: nn.Module, curve: str = "Bezier", num_bends: int = 3,
                 fix_start: bool = True, fix_end: bool = True):
        super().__init__()
        if curve not in CURVES:
            raise ValueError(f"unknown curve {curve!r} (choose from {', '.join(CURVES)})")
        if num_bends < 2:
            raise ValueError(f"a curve needs at least 2 bends (got {num_bends})")
        self.curve, self.num_bends = curve, num_bends
        self.fix_start, self.fix_end = bool(fix_start), bool(fix_end)
        self.coefficient_fn = CURVES[curve]

        # tied parameters (one tensor under two names) get one slot, and the other names as aliases
        self.names, self.aliases, slot_of, tensors = [], [], {}, []
        for name, p in module.named_parameters(remove_duplicate=False):
            if id(p) in slot_of:
                self.aliases.append((name, slot_of[id(p)]))
            else:
                slot_of[id(p)] = len(self.names)
                self.names.append(name)
                tensors.append(p.detach())
        self.shapes = [tuple(t.shape) for t in tensors]
        fixed = [k for k, f in ((0, fix_start), (num_bends - 1, fix_end)) if f]
        self.fixed_bends = fixed
        self.free_bends = [k for k in range(num_bends) if k not in fixed]
        self.bends = nn.ModuleList([Bend(self.names, tensors, k not in fixed) for k in range(num_bends)])

        # The module keeps only its buffers; None keeps the names known (repr, attribute reads).
        for sub in module.modules():
            for key in [k for k, v in sub._parameters.items() if v is not None]:
                sub._parameters[key] = None
        self.module = module
        self._last_sq = None  # 0.5 * ||phi(t)||^2 at the last forward's t, for the L2 term

    # ------------------------------------------------------------------ bends
    @property
    def num_weights(self) -> int:
        return sum(t.numel() for t in self.bends[0].tensors())

    def bend(self, k: int) -> torch.Tensor:
        """Bend k as a flat (P,) vector (a copy)."""
        return torch.cat([t.detach().reshape(-1) for t in self.bends[k].tensors()])

    def bends_matrix(self) -> torch.Tensor:
        """All bends, (num_bends, P)."""
        return torch.stack([self.bend(k) for k in range(self.num_bends)])

    @torch.no_grad()
    def load_bend(self, k: int, state: dict) -> None:
        """Set bend k from a plain model state dict, matching parameters by name."""
        missing = [name for name in self.names if name not in state]
        if missing:
            raise ValueError(f"the state has no parameter {missing[0]!r} ({len(missing)} missing)")
        for name, shape, tensor in zip(self.names, self.shapes, self.bends[k].tensors()):
            if tuple(state[name].shape) != shape:
                raise ValueError(f"parameter {name!r} has shape {tuple(state[name].shape)}, the curve needs {shape}")
            tensor.copy_(state[name])

    @torch.no_grad()
    def init_linear(self) -> None:
        """Put the middle bends evenly on the segment: w_k = (1 - k/(n-1)) w_0 + k/(n-1) w_{n-1}."""
        first, last = self.bends[0].tensors(), self.bends[-1].tensors()
        for k in range(1, self.num_bends - 1):
            for tensor, a, b in zip(self.bends[k].tensors(), first, last):
                tensor.copy_(torch.lerp(a, b, k / (self.num_bends - 1)))

    # ------------------------------------------------------------------ weights at t
    def coefficients(self, t) -> torch.Tensor:
        """c(t), shape (num_bends,)."""
        return self.coefficient_fn(float(t), self.num_bends)

    # Left out of torch.compile: the coefficients are Python floats, on which a compiled
    # graph would specialise and recompile at every t; memory-bound foreach ops gain nothing.
    @torch.compiler.disable
    def _combine(self, t) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(0.5 * ||phi(t)||^2, phi(t) as one tensor per parameter); t ~ U(0, 1) when None."""
        if t is None:
            if not self.training:
                raise ValueError("a curve in eval mode needs t: call curve(x, t)")
            # the global CPU generator: checkpoints save its state, so a resumed run draws the same t's
            t = torch.rand(())
        c = self.coefficients(t).tolist()  # a CPU tensor: no device sync
        fixed = [self.bends[k].tensors() for k in self.fixed_bends]
        free = [p for k in self.free_bends for p in self.bends[k].tensors()]
        # float32 even under autocast: the combination and the L2 term are precision-sensitive
        with torch.autocast(self.bends[0].p0.device.type, enabled=False):
            sq, *phi = _Combine.apply([c[k] for k in self.fixed_bends], fixed,
                                      [c[k] for k in self.free_bends], len(self.names), *free)
        return sq, phi

    def weights(self, t) -> torch.Tensor:
        """phi(t) = sum_k c_k(t) w_k as a flat (P,) vector (differentiable in the free bends)."""
        return torch.cat([p.reshape(-1) for p in self._combine(t)[1]])

    def parameters_at(self, phi) -> dict:
        """The module's parameters by name, from a flat (P,) vector or a per-parameter list."""
        if torch.is_tensor(phi):
            phi = [part.view(shape) for part, shape in
                   zip(phi.split([torch.Size(s).numel() for s in self.shapes]), self.shapes)]
        params = dict(zip(self.names, phi))
        params.update({name: phi[slot] for name, slot in self.aliases})
        return params

    def run(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The module's output on ``x`` with the flat weights ``w`` (any point, e.g. of a plane)."""
        return functional_call(self.module, self.parameters_at(w), (x,))

    def forward(self, x: torch.Tensor, t=None) -> torch.Tensor:
        sq, phi = self._combine(t)
        self._last_sq = sq  # for l2(): the combination is computed once per step
        return functional_call(self.module, self.parameters_at(phi), (x,))

    def at(self, t):
        """The network at t as a function ``x -> logits``, phi(t) computed once and without gradients:
        for evaluation and BatchNorm updates, where a forward per batch would recompute it."""
        with torch.no_grad():
            params = self.parameters_at(self._combine(t)[1])
        return lambda x: functional_call(self.module, params, (x,))

    def l2(self, wd: float, t=None) -> torch.Tensor:
        """The curve's weight decay 0.5 * wd * ||phi(t)||^2, at the t of the last forward when t is None."""
        if t is not None:
            return wd * self._combine(t)[0]
        if self._last_sq is None:
            raise RuntimeError("l2() without t needs a forward pass first")
        return wd * self._last_sq

    def regularizer(self, wd: float):
        """``l2`` at the last forward's t, as the ``regularizer`` callable of ``utils.train_epoch``."""
        return lambda: self.l2(wd)

    @torch.no_grad()
    def module_state(self, t) -> dict:
        """A plain state dict of the module at t (weights phi(t), current buffers): a point as a model."""
        state = {name: p.clone() for name, p in self.parameters_at(self._combine(t)[1]).items()}
        state.update(self.module.state_dict())
        return state

    def extra_repr(self) -> str:
        return (f"curve={self.curve}, num_bends={self.num_bends}, fix_start={self.fix_start}, "
                f"fix_end={self.fix_end}, weights={self.num_weights}")
