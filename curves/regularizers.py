"""Regularisers that shape a subspace of networks: the vertices' cosine and the simplex volume.

Both act on vertices given as lists of tensors (one per parameter), so that no
vertex is ever copied into one flat vector unless the computation needs it.

- ``cosine_squared(a, b)``: cos^2 of the angle between two vertices, the
  parameters concatenated: (sum_p <a_p, b_p>)^2 / (sum_p |a_p|^2 * sum_p |b_p|^2).
  learning-subspaces adds beta * cos^2(w_i, w_j) of a random pair (beta = 1) so
  that the vertices, each from its own random initialisation, stay apart.
- ``volume_sq(vertices)``: the squared volume V^2 of the simplex spanned by the
  vertices, from the Cayley-Menger determinant of their pairwise squared
  distances. Loss-surface-simplexes (SPRO) subtracts lambda * log(V^2 + 1e-4).
"""
from __future__ import annotations

import math

import torch

VOLUME_EPS = 1e-4  # SPRO's log(V^2 + 1e-4): finite while the newest vertex still sits on the others


def cayley_menger_volume_sq(sq_dists: torch.Tensor) -> torch.Tensor:
    """V^2 of the simplex of n points (dimension n - 1) with pairwise squared distances ``sq_dists`` (n, n).

    Cayley-Menger: V^2 = (-1)^n / (2^(n-1) ((n-1)!)^2) * det [[0, 1^T], [1, D]].
    It needs only the distances, so it holds in any ambient dimension (a network's
    millions of weights). The determinant is taken in float64: D's entries are large
    (squared weight distances) and the border of ones small. Its absolute value, as in
    SPRO's code, equals the signed formula for every real simplex and keeps rounding
    noise of a degenerate one (a new vertex on the others) from going negative.
    One point has volume 1, the empty product.
    """
    n = sq_dists.shape[0]
    border = torch.ones(n + 1, n + 1, dtype=torch.float64, device=sq_dists.device)
    border[0, 0] = 0
    cm = torch.cat([border[:1], torch.cat([border[1:, :1], sq_dists.double()], 1)], 0)
    return torch.linalg.det(cm).abs() / (2 ** (n - 1) * math.factorial(n - 1) ** 2)


def squared_distances(vertices: list[list[torch.Tensor]]) -> torch.Tensor:
    """|w_i - w_j|^2 (n, n), float64, differentiable in every vertex that requires grad.

    From the Gram matrix G of the differences d_k = w_k - w_0 (k >= 1):
    |w_i - w_j|^2 = G_ii + G_jj - 2 G_ij. Differences first, because the networks'
    weights are far larger than their distances: |w_i|^2 + |w_j|^2 - 2 <w_i, w_j>
    would lose the distances to cancellation in float32. One matrix product over
    the (n-1, P) differences does every pair at once.
    """
    n = len(vertices)
    if n == 1:
        return torch.zeros(1, 1, dtype=torch.float64, device=vertices[0][0].device)
    flat = [torch.cat([t.reshape(-1) for t in v]) for v in vertices]
    diffs = torch.stack(flat[1:]) - flat[0]  # (n-1, P)
    gram = (diffs @ diffs.T).double()
    gram = torch.nn.functional.pad(gram, (1, 0, 1, 0))  # d_0 = 0
    diag = gram.diagonal()
    return diag[:, None] + diag[None, :] - 2 * gram


def volume_sq(vertices: list[list[torch.Tensor]]) -> torch.Tensor:
    """V^2 of the simplex whose vertices are given as lists of tensors (all parameters, as SPRO)."""
    return cayley_menger_volume_sq(squared_distances(vertices))


def spro_lambda(lmbd: float, reference_volume_sq: float, eps: float = VOLUME_EPS) -> float:
    """SPRO's weight of -log(V^2 + eps): max(lmbd / log(V0^2 + eps), 1e-8).

    V0^2 is the squared volume of a randomly initialised simplex with as many vertices
    as the one being trained (simplex_trainer.py builds one per vertex count), so that
    ``lmbd`` means the same for every number of vertices.
    """
    return max(lmbd / math.log(reference_volume_sq + eps), 1e-8)


def _flat(a: torch.Tensor) -> torch.Tensor:
    if a.dim() == 4 and not a.is_contiguous() and a.is_contiguous(memory_format=torch.channels_last):
        return a.permute(0, 2, 3, 1).reshape(-1)  # a view: channels-last memory is NHWC-contiguous
    return a.reshape(-1)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.stride() == b.stride():  # the same memory order, so their flat views pair the same elements
        return torch.dot(_flat(a), _flat(b))  # no temporary for contiguous and channels-last weights
    return (a * b).sum()


def cosine_parts(a: list[torch.Tensor], b: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(num, na, nb) = (sum_p <a_p, b_p>, sum_p |a_p|^2, sum_p |b_p|^2): cos^2 = num^2 / (na nb)."""
    num = torch.stack([_dot(x, y) for x, y in zip(a, b)]).sum()
    na = torch.stack(torch._foreach_norm(a)).square().sum()
    nb = torch.stack(torch._foreach_norm(b)).square().sum()
    return num, na, nb


def cosine_gradient_scales(grad, num, na, nb):
    """(x, ya, yb): d(grad * cos^2)/da = x b + ya a and d/db = x a + yb b.

    From c = num^2 / (na nb): dc/da = 2 num / (na nb) b - 2 num^2 / (na^2 nb) a. Python
    floats on a CPU (foreach adds take them as alpha, with no temporary), 0-d tensors on
    a GPU (where .item() would wait for the device and temporaries cost little).
    """
    x = grad * 2 * num / (na * nb)
    ya, yb = -x * num / na, -x * num / nb
    if x.device.type == "cpu":
        return x.item(), ya.item(), yb.item()
    return x, ya, yb


def add_scaled_(acc: list[torch.Tensor], tensors: list[torch.Tensor], c) -> None:
    """acc += c * tensors: c a float, a 0-d tensor, or a list of floats (one per tensor)."""
    if isinstance(c, float):
        torch._foreach_add_(acc, tensors, alpha=c)
    else:  # foreach add takes only one Python alpha
        torch._foreach_add_(acc, torch._foreach_mul(tensors, c))


class _CosineSquared(torch.autograd.Function):
    """cos^2 of two vertices with a hand-written backward, one node for all parameters
    (autograd's own would keep a node and a temporary per parameter and per dot product).
    SubspaceModel fuses the same computation into its combination's node."""

    @staticmethod
    def forward(ctx, num_params, *tensors):
        a, b = tensors[:num_params], tensors[num_params:]
        num, na, nb = cosine_parts(a, b)
        ctx.num_params = num_params
        ctx.save_for_backward(num, na, nb, *tensors)
        return num.square() / (na * nb)

    @staticmethod
    def backward(ctx, grad):
        num, na, nb, *tensors = ctx.saved_tensors
        n = ctx.num_params
        a, b = tensors[:n], tensors[n:]
        x, ya, yb = cosine_gradient_scales(grad, num, na, nb)
        ga = torch._foreach_mul(b, x)
        add_scaled_(ga, a, ya)
        gb = torch._foreach_mul(a, x)
        add_scaled_(gb, b, yb)
        return (None, *ga, *gb)


def cosine_squared(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """cos^2 of the angle between the concatenations of ``a`` and ``b`` (0-d, differentiable)."""
    if len(a) != len(b) or not a:
        raise ValueError("cosine_squared needs two equally long, non-empty lists of tensors")
    return _CosineSquared.apply(len(a), *a, *b)
