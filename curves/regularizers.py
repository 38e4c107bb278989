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
import weakref

import torch

VOLUME_EPS = 1e-4  # SPRO's log(V^2 + 1e-4): finite while the newest vertex still sits on the others


# --------------------------------------------------------------------------- the volume

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


def _channels_last(a: torch.Tensor) -> bool:
    return a.dim() == 4 and not a.is_contiguous() and a.is_contiguous(memory_format=torch.channels_last)


def _flat(a: torch.Tensor) -> torch.Tensor:
    """a's elements in memory order: a view for contiguous and channels-last (--channels_last) weights."""
    if _channels_last(a):
        return a.permute(0, 2, 3, 1).reshape(-1)  # channels-last memory is NHWC-contiguous
    return a.reshape(-1)


def _unflat(flat: torch.Tensor, shape, channels_last: bool) -> torch.Tensor:
    """The inverse of ``_flat``: a view of ``flat`` with the shape and memory order of the original."""
    if channels_last:
        n, c, h, w = shape
        return flat.view(n, h, w, c).permute(0, 3, 1, 2)
    return flat.view(shape)


class _EdgeGram(torch.autograd.Function):
    """G_ij = <e_i, e_j> for the edges e_k = w_k - w_0 (k = 1 .. n-1), all parameters concatenated.

    Each parameter's edges go into a (k, size) matrix, and matrix products give every
    pair, summed over the parameters; the backward is products too: dL/de_k =
    sum_j (H_kj + H_jk) e_j with H = dL/dG, dL/dw_k = dL/de_k and dL/dw_0 = -sum_k dL/de_k.
    Autograd through flattening and stacking would copy every vertex several times each
    step (ten times slower on SPRO's VGG16 simplexes), and the gradients here are views
    of one buffer per parameter. One buffer per parameter, not one for the whole
    network: a fresh buffer of a network's size (60 MB for VGG16) is new memory from the
    system at every step, and its page faults cost more than the products.

    ``cache`` (a dict the caller keeps from call to call): while w_0 needs no gradient, the
    edges of the vertices that need none either, and their block of G, are kept there and
    reused as long as those vertices are the same tensors at the same version. SPRO freezes
    every vertex but the newest, so each step builds one edge instead of n - 1.
    """

    @staticmethod
    def forward(ctx, n, num_params, cache, *tensors):
        vertices = [tensors[k * num_params:(k + 1) * num_params] for k in range(n)]
        first = vertices[0]
        # _flat's memory order where every vertex has the same layout, else the logical order
        same = [all(v[s].stride() == t.stride() for v in vertices) for s, t in enumerate(first)]
        flat = [_flat if ok else (lambda t: t.reshape(-1)) for ok in same]

        def edges_of(ks):  # one (len(ks), size) matrix per parameter
            return [torch.stack([f(vertices[k][s]) for k in ks]).sub_(f(w0)) if ks else w0.new_empty(0, w0.numel())
                    for s, (w0, f) in enumerate(zip(first, flat))]

        def gram(a, b):
            return sum(x @ y.T for x, y in zip(a, b))

        need = [any(ctx.needs_input_grad[3 + k * num_params:3 + (k + 1) * num_params]) for k in range(n)]
        kept = [k for k in range(1, n) if not need[k]] if cache is not None and not need[0] else []
        live = [k for k in range(1, n) if k not in kept]
        if kept:
            key = [(t, t._version) for k in [0] + kept for t in vertices[k]]
            if not _same_tensors(cache.get("key"), key):
                edges = edges_of(kept)
                cache.update(key=[(weakref.ref(t), version) for t, version in key], edges=edges,
                             gram=gram(edges, edges))
            fixed, fixed_gram = cache["edges"], cache["gram"]
        else:
            fixed, fixed_gram = edges_of([]), first[0].new_empty(0, 0)
        moving = edges_of(live)
        cross = gram(fixed, moving)
        blocks = torch.cat([torch.cat([fixed_gram, cross], 1), torch.cat([cross.T, gram(moving, moving)], 1)])
        order = torch.tensor([(kept + live).index(k) for k in range(1, n)], device=blocks.device)
        ctx.save_for_backward(*fixed, *moving)
        ctx.n, ctx.num_params, ctx.kept, ctx.live = n, num_params, kept, live
        ctx.layouts = [(t.shape, ok and _channels_last(t)) for t, ok in zip(first, same)]
        return blocks[order][:, order]  # edges in vertex order

    @staticmethod
    def backward(ctx, grad_gram):
        saved = ctx.saved_tensors
        n, num_params = ctx.n, ctx.num_params
        fixed, moving = saved[:num_params], saved[num_params:]
        need = ctx.needs_input_grad[3:]
        free = [k for k in range(n) if any(need[k * num_params:(k + 1) * num_params])]
        grads = [None] * (n * num_params)
        if not free:
            return (None, None, None, *grads)
        h = grad_gram + grad_gram.T
        scales = torch.stack([h[k - 1] if k else -h.sum(0) for k in free])  # (free, n-1), edges in vertex order
        live_scales = scales[:, [k - 1 for k in ctx.live]]
        kept_scales = scales[:, [k - 1 for k in ctx.kept]] if ctx.kept else None
        for s, (shape, channels_last) in enumerate(ctx.layouts):
            rows = live_scales @ moving[s]
            if kept_scales is not None:
                rows.addmm_(kept_scales, fixed[s])
            for k, row in zip(free, rows):
                grads[k * num_params + s] = _unflat(row, shape, channels_last)
        return (None, None, None, *grads)


def _same_tensors(stored, key) -> bool:
    """Whether ``stored`` (weak references and versions) names the tensors of ``key``, unchanged."""
    return stored is not None and len(stored) == len(key) and all(
        ref() is t and version == v for (ref, version), (t, v) in zip(stored, key))


def squared_distances(vertices: list[list[torch.Tensor]], cache: dict | None = None) -> torch.Tensor:
    """|w_i - w_j|^2 (n, n), float64, differentiable in every vertex that requires grad.

    From the Gram matrix G of the edges e_k = w_k - w_0 (k >= 1):
    |w_i - w_j|^2 = G_ii + G_jj - 2 G_ij. Edges first, because the networks' weights
    are far larger than their distances: |w_i|^2 + |w_j|^2 - 2 <w_i, w_j> would lose
    the distances to cancellation in float32 (as SPRO's gpytorch covar_dist can).
    ``cache``: a dict kept by the caller, for the frozen vertices' edges (see _EdgeGram).
    """
    n = len(vertices)
    if n == 1:
        return torch.zeros(1, 1, dtype=torch.float64, device=vertices[0][0].device)
    gram = _EdgeGram.apply(n, len(vertices[0]), cache, *[t for v in vertices for t in v]).double()
    gram = torch.nn.functional.pad(gram, (1, 0, 1, 0))  # e_0 = 0
    diag = gram.diagonal()
    return diag[:, None] + diag[None, :] - 2 * gram


def volume_sq(vertices: list[list[torch.Tensor]], cache: dict | None = None) -> torch.Tensor:
    """V^2 of the simplex whose vertices are given as lists of tensors (all parameters, as SPRO)."""
    return cayley_menger_volume_sq(squared_distances(vertices, cache))


def spro_lambda(lmbd: float, reference_volume_sq: float, eps: float = VOLUME_EPS) -> float:
    """SPRO's weight of -log(V^2 + eps): max(lmbd / log(V0^2 + eps), 1e-8 * lmbd / 1e-6).

    V0^2 is the squared volume of a random simplex with as many vertices as the one being
    trained (``reference_volumes_sq``; simplex_trainer.py builds one per vertex count), so that
    ``lmbd`` means the same for every number of vertices. The original's floor is 1e-8 for its
    LMBD = 1e-6; here it scales with ``lmbd``, so that lambda scales with it everywhere: simplex.py
    averages the points' losses where the original sums them, and lmbd / k with the mean of k
    points is then the original's lmbd with its sum, floor included (scripts/simplexes_table.sh).
    """
    floor = 1e-8 * lmbd / 1e-6
    log_volume = math.log(reference_volume_sq + eps)
    return max(lmbd / log_volume, floor) if log_volume > 0 else floor  # SPRO's max() for log <= 0


def reference_volumes_sq(make_module, num_vertices: int, init=None, seed: int = 0) -> list[float]:
    """V0^2 of the simplex of the first k of ``num_vertices`` random networks, k = 1 .. num_vertices.

    Each network is ``make_module()`` initialised by ``init`` (default: loss-surface-simplexes'
    SimplexNet rule, ``models.init.simplex_net_init_``), drawn from ``seed`` without touching the
    global random state; every parameter counts, as in SPRO's volume. The original draws a new
    simplex for each k; the first k of one draw have the same distribution.
    """
    if init is None:
        from models.init import simplex_net_init_ as init
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        vertices = []
        for _ in range(num_vertices):
            module = make_module()
            init(module)
            vertices.append([p.detach() for p in module.parameters()])
        return [float(volume_sq(vertices[:k])) for k in range(1, num_vertices + 1)]


# --------------------------------------------------------------------------- the cosine

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
