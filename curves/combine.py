"""The fused combination sum_k c_k w_k of a SubspaceModel's vertices, with its regularisers' gradients."""
from __future__ import annotations

import torch

from curves import regularizers


class Combine(torch.autograd.Function):
    """phi = sum_k c_k w_k for every parameter at once, sq = 0.5 * ||phi||^2 and, for a pair
    of vertices (i, j), cos^2(w_i, w_j) over the parameters ``slots`` (see regularizers.py).

    One node with a hand-written backward, because autograd's own would allocate a
    temporary per term: here dL/dw_k = c_k * (dL/dphi + dL/dsq * phi) for each free
    vertex k (the L2 term's gradient is fused in), and the cosine's gradient is added
    in place to the pair's, so the regulariser costs no gradient buffers of its own.
    ``torch._foreach`` ops keep the per-parameter work to a few kernel calls. A
    coefficient is a Python float, or a list of floats, one per parameter (layerwise).
    Vertices are numbered fixed first, then free.
    """

    @staticmethod
    def forward(ctx, fixed_coeffs, fixed, free_coeffs, num_params, pair, slots, *free):
        ctx.set_materialize_grads(False)
        vertices = list(fixed) + [list(free[j:j + num_params]) for j in range(0, len(free), num_params)]
        phi = None
        for c, tensors in zip(list(fixed_coeffs) + list(free_coeffs), vertices):
            if phi is None:
                phi = torch._foreach_mul(tensors, c)
            else:
                regularizers.add_scaled_(phi, tensors, c)
        sq = 0.5 * torch.stack(torch._foreach_norm(phi)).square().sum()
        cos = sq.new_zeros(())
        if pair is not None:
            num, na, nb = regularizers.cosine_parts(*([vertices[k][s] for s in slots] for k in pair))
            cos = num.square() / (na * nb)
            ctx.cosine_parts = (num, na, nb)  # 0-d tensors of no graph: no need to save them
        ctx.free_coeffs, ctx.pair, ctx.slots, ctx.num_fixed = free_coeffs, pair, slots, len(fixed)
        ctx.vertices = vertices if pair is not None else None
        ctx.save_for_backward(*phi)
        return (sq, cos, *phi)

    @staticmethod
    def backward(ctx, grad_sq, grad_cos, *grad_phi):
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
                torch._foreach_mul_(total, c)  # the last free vertex takes the buffer: one allocation fewer
                grads.append(total)
            else:
                grads.append(torch._foreach_mul(grad_phi if total is None else total, c))
        if ctx.pair is not None and grad_cos is not None:
            i, j = ctx.pair
            x, yi, yj = regularizers.cosine_gradient_scales(grad_cos, *ctx.cosine_parts)
            for own, other, y in ((i, j, yi), (j, i, yj)):
                if own >= ctx.num_fixed:  # d cos^2 / d w_own = x w_other + y w_own
                    g = [grads[own - ctx.num_fixed][s] for s in ctx.slots]
                    regularizers.add_scaled_(g, [ctx.vertices[other][s] for s in ctx.slots], x)
                    regularizers.add_scaled_(g, [ctx.vertices[own][s] for s in ctx.slots], y)
        return (None,) * 6 + tuple(g for vertex in grads for g in vertex)
