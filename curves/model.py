"""SubspaceModel: any ``nn.Module`` made into a set of networks sum_k c_k w_k, with CurveModel its curve case.

One implementation for the three papers: a curve phi(t) = sum_k c_k(t) w_k between
two trained networks (Garipov et al.), a line or simplex of networks learned from
scratch (Wortsman et al., learning-subspaces), and a simplex grown vertex by vertex
around a trained network (Benton et al., SPRO). They differ only in the coefficients
c (a curve's c(t), or a point of the simplex), which vertices train, and the
regularisers (curves/regularizers.py).

The module itself is unchanged. Its parameters are taken out of it (set to None)
and replaced by ``num_vertices`` vertices, each a ``Vertex`` holding one tensor per
parameter: trainable parameters for free vertices, buffers for frozen ones. A
forward pass computes every parameter's weights once, sum_k c_k w_k, and runs the
module on them with ``torch.func.functional_call``. BatchNorm affine parameters
are parameters like any other, so each vertex has its own (as in learning-
subspaces); the running statistics are the module's buffers, shared by all points:
recompute them at each evaluated point with
``utils.update_bn(model, loader, forward=model.at(point))``.

A point is a curve's t (a float or 0-d tensor), or coefficients: a vector (n,)
shared by all parameters, or a matrix (layers, n) with one row per layer (see
``layers``). In training mode a forward without a point draws one from the model's
own generator (``sampler``), never from the global RNG: every data-parallel rank
draws the same point, and the generator's state is in the state dict, so a resumed
run draws the sequence an uninterrupted one would.

Checkpoints are by name: ``state_dict()`` holds ``vertices.<k>.<parameter name>``
(``bends.<k>.<name>`` for a CurveModel), the module's buffers as ``module.<name>``
and the generator as ``sampler._extra_state``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call

from curves import coefficients as coeffs
from curves import regularizers
from curves.combine import Combine
from curves.vertices import Sampler, Vertex


def _is_t(point) -> bool:
    """A curve's t is a scalar; coefficients are a vector or a matrix."""
    return point.dim() == 0 if torch.is_tensor(point) else np.ndim(point) == 0


class SubspaceModel(nn.Module):
    """``num_vertices`` vertices in the weight space of ``module`` (which it takes over).

    shape: 'Bezier' or 'PolyChain' (a curve: a point is t, or its c(t)) or 'simplex'
    (a point is any coefficient vector on the simplex). A learned line is a 2-vertex
    'PolyChain' (or 'simplex': Dirichlet(1, 1) is (1 - alpha, alpha), alpha ~ U(0, 1)).
    fixed: indices of frozen vertices (buffers, never trained). layerwise: training
    draws one point per layer instead of one for the whole network. seed: the
    sampler's seed; None draws it from the global RNG, so ``torch.manual_seed`` before
    construction fixes it. All vertices start as copies of the module's parameters:
    set them with ``load_vertex``, ``init_random`` or ``add_vertex``.
    """

    vertices_attribute = "vertices"  # the state dict's prefix: vertices.<k>.<parameter name>

    def __init__(self, module: nn.Module, shape: str = "simplex", num_vertices: int = 2, fixed=(),
                 layerwise: bool = False, seed: int | None = None):
        super().__init__()
        if shape not in coeffs.SHAPES:
            raise ValueError(f"unknown shape {shape!r} (choose from {', '.join(coeffs.SHAPES)})")
        if num_vertices < (1 if shape == "simplex" else 2):
            raise ValueError(f"a {shape} needs at least {1 if shape == 'simplex' else 2} vertices (got {num_vertices})")
        fixed = sorted({int(k) for k in fixed})
        if any(not 0 <= k < num_vertices for k in fixed):
            raise ValueError(f"fixed vertices {fixed} out of range for {num_vertices} vertices")
        self.shape, self.layerwise = shape, bool(layerwise)
        self.coefficient_fn = coeffs.CURVES.get(shape)

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
        # A layer is a module that owns parameters: a convolution's weight and bias share a
        # layerwise draw, as do a BatchNorm's (learning-subspaces draws per Conv2d and per BatchNorm2d).
        owners = [name.rpartition(".")[0] for name in self.names]
        self.layers = list(dict.fromkeys(owners))
        self._slot_layer = torch.tensor([self.layers.index(o) for o in owners], dtype=torch.long)
        # learning-subspaces' cosine acts on nn.Conv2d weights; its classifier is a 1x1 Conv2d
        # and nothing has a bias, so that is every weight but BatchNorm's: convolution and linear weights here.
        kinds = {name: type(m) for name, m in module.named_modules()}
        self.cosine_slots = [i for i, (name, owner) in enumerate(zip(self.names, owners))
                             if name.endswith("weight") and issubclass(kinds.get(owner, nn.Module),
                                                                       (nn.modules.conv._ConvNd, nn.Linear))]
        self.add_module(self.vertices_attribute, nn.ModuleList(
            [Vertex(self.names, tensors, k not in fixed) for k in range(num_vertices)]))
        if seed is None:
            seed = int(torch.randint(2 ** 62, ()))
        self.sampler = Sampler(seed)

        # The module keeps only its buffers; None keeps the names known (repr, attribute reads).
        for sub in module.modules():
            for key in [k for k, v in sub._parameters.items() if v is not None]:
                sub._parameters[key] = None
        self.module = module
        self._last_sq = None  # 0.5 * ||phi||^2 at the last forward's point, for the L2 term
        self._last_cos = None  # cos^2 of the pair drawn at the last forward, when fused
        # Training forwards also compute cos^2 of a random pair, fused with the combination: its
        # gradient then costs no buffers of its own (regularizer(beta=...) turns it on).
        self.fuse_cosine = False
        self.last_coefficients, self.last_pair = None, None  # the last point and cosine pair drawn
        self._volume_cache = {}  # the frozen vertices' edges for volume_sq (regularizers._EdgeGram)

    # ------------------------------------------------------------------ vertices
    @property
    def vertices(self) -> nn.ModuleList:
        # Module.__getattr__ raises AttributeError until it is registered, as add_module's check needs
        return nn.Module.__getattr__(self, self.vertices_attribute)

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    @property
    def fixed_vertices(self) -> list[int]:
        return [k for k, v in enumerate(self.vertices) if not v.trainable]

    @property
    def free_vertices(self) -> list[int]:
        return [k for k, v in enumerate(self.vertices) if v.trainable]

    @property
    def num_weights(self) -> int:
        return sum(t.numel() for t in self.vertices[0].tensors())

    def vertex(self, k: int) -> torch.Tensor:
        """Vertex k as a flat (P,) vector (a copy)."""
        return torch.cat([t.detach().reshape(-1) for t in self.vertices[k].tensors()])

    def vertices_matrix(self) -> torch.Tensor:
        """All vertices, (num_vertices, P)."""
        return torch.stack([self.vertex(k) for k in range(self.num_vertices)])

    @torch.no_grad()
    def load_vertex(self, k: int, state: dict) -> None:
        """Set vertex k from a plain model state dict, matching parameters by name."""
        missing = [name for name in self.names if name not in state]
        if missing:
            raise ValueError(f"the state has no parameter {missing[0]!r} ({len(missing)} missing)")
        for name, shape, tensor in zip(self.names, self.shapes, self.vertices[k].tensors()):
            if tuple(state[name].shape) != shape:
                raise ValueError(f"parameter {name!r} has shape {tuple(state[name].shape)}, the model needs {shape}")
            tensor.copy_(state[name])

    @torch.no_grad()
    def init_random(self, make_module, vertices=None) -> None:
        """Give each of ``vertices`` (default: all but vertex 0, which has the module's own) the
        parameters of a fresh ``make_module()``: its own random initialisation, as learning-subspaces
        initialises every vertex of a line or simplex independently. Draws from the global RNG."""
        for k in range(1, self.num_vertices) if vertices is None else vertices:
            self.load_vertex(k, make_module().state_dict())

    @torch.no_grad()
    def add_vertex(self) -> int:
        """SPRO's step: freeze every vertex, append a free one at their centroid; returns its index.

        Rebuild the optimizer afterwards: the old vertices' parameters are now buffers.
        """
        if self.shape != "simplex":
            raise ValueError(f"add_vertex grows a simplex, not a {self.shape} curve")
        n = self.num_vertices
        centre = torch._foreach_mul(self.vertices[0].tensors(), 1.0 / n)
        for v in self.vertices[1:]:
            torch._foreach_add_(centre, v.tensors(), alpha=1.0 / n)
        for v in self.vertices:
            if v.trainable:
                v.freeze()
        self.vertices.append(Vertex(self.names, centre, trainable=True))
        return n

    # ------------------------------------------------------------------ points
    def coefficients(self, point) -> torch.Tensor:
        """A point's coefficients on the CPU: (n,) for a t or a vector, (layers, n) for a per-layer matrix."""
        if _is_t(point):
            if self.coefficient_fn is None:
                raise ValueError("a point of a simplex is a coefficient vector, not a t")
            return self.coefficient_fn(float(point), self.num_vertices)
        c = torch.as_tensor(point).detach().cpu().double()
        if c.shape[-1:] != (self.num_vertices,) or c.dim() > 2 or (c.dim() == 2 and len(c) not in (1, len(self.layers))):
            raise ValueError(f"coefficients of shape {tuple(c.shape)}: need ({self.num_vertices},) or "
                             f"({len(self.layers)}, {self.num_vertices}) for {len(self.layers)} layers")
        return c[0] if c.dim() == 2 and len(c) == 1 else c

    def sample(self) -> torch.Tensor:
        """A random point's coefficients from the model's generator: (n,), or (layers, n) when layerwise."""
        c = coeffs.draw(self.shape, len(self.layers) if self.layerwise else 1, self.num_vertices,
                        self.sampler.generator)
        return c if self.layerwise else c[0]

    def sample_pair(self) -> tuple[int, int]:
        """Two distinct vertices, uniformly (learning-subspaces' random.sample(range(n), 2))."""
        if self.num_vertices == 2:
            return 0, 1
        i, j = torch.randperm(self.num_vertices, generator=self.sampler.generator)[:2].tolist()
        return i, j

    def sampler_state(self) -> torch.Tensor:
        return self.sampler.get_extra_state()

    def load_sampler_state(self, state: torch.Tensor) -> None:
        self.sampler.set_extra_state(state)

    # Left out of torch.compile: the coefficients are Python floats, on which a compiled
    # graph would specialise and recompile at every point; memory-bound foreach ops gain nothing.
    @torch.compiler.disable
    def _combine(self, point, with_cosine: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(0.5 * ||phi||^2, cos^2 of a random pair or 0, phi as one tensor per parameter) at ``point``;
        the point drawn when None, then the pair when ``with_cosine``."""
        if point is None:
            if not self.training:
                raise ValueError("a model in eval mode needs a point: model(x, t) or model(x, coefficients=c)")
            c = self.sample()
        else:
            c = self.coefficients(point)
        self.last_coefficients = c
        # CPU tensors, so no device sync: one float per vertex, or one per parameter and vertex
        per_vertex = c.tolist() if c.dim() == 1 else c[self._slot_layer].T.tolist()
        fixed, free = self.fixed_vertices, self.free_vertices
        pair = None
        if with_cosine:
            self.last_pair = self.sample_pair()
            order = fixed + free  # Combine numbers the vertices this way
            pair = (order.index(self.last_pair[0]), order.index(self.last_pair[1]))
        free_tensors = [p for k in free for p in self.vertices[k].tensors()]
        # float32 even under autocast: the combination and the regularisers are precision-sensitive
        with torch.autocast(self.vertices[0].p0.device.type, enabled=False):
            sq, cos, *phi = Combine.apply(
                [per_vertex[k] for k in fixed], [self.vertices[k].tensors() for k in fixed],
                [per_vertex[k] for k in free], len(self.names), pair, self.cosine_slots, *free_tensors)
        return sq, cos, phi

    def weights(self, point) -> torch.Tensor:
        """sum_k c_k w_k as a flat (P,) vector (differentiable in the free vertices)."""
        return torch.cat([p.reshape(-1) for p in self._combine(point)[2]])

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

    def forward(self, x: torch.Tensor, t=None, *, coefficients=None) -> torch.Tensor:
        fuse = self.fuse_cosine and self.training and torch.is_grad_enabled()
        sq, cos, phi = self._combine(t if coefficients is None else coefficients, with_cosine=fuse)
        # for l2() and cosine(): the combination and the regularisers are computed once per step
        self._last_sq, self._last_cos = sq, (cos if fuse else None)
        return functional_call(self.module, self.parameters_at(phi), (x,))

    def at(self, point):
        """The network at ``point`` as a function ``x -> logits``, its weights computed once and without
        gradients: for evaluation and BatchNorm updates, where a forward per batch would recompute them."""
        with torch.no_grad():
            params = self.parameters_at(self._combine(point)[2])
        return lambda x: functional_call(self.module, params, (x,))

    @torch.no_grad()
    def module_state(self, point) -> dict:
        """A plain state dict of the module at ``point`` (its weights, current buffers): a point as a model."""
        state = {name: p.clone() for name, p in self.parameters_at(self._combine(point)[2]).items()}
        state.update(self.module.state_dict())
        return state

    # ------------------------------------------------------------------ regularisers
    def l2(self, wd: float, point=None) -> torch.Tensor:
        """Weight decay at a point, 0.5 * wd * ||phi||^2; at the last forward's point when ``point`` is None."""
        if point is not None:
            return wd * self._combine(point)[0]
        if self._last_sq is None:
            raise RuntimeError("l2() without a point needs a forward pass first")
        return wd * self._last_sq

    def cosine(self, pair=None) -> torch.Tensor:
        """cos^2 between vertices i and j over the convolution and linear weights, concatenated
        (learning-subspaces' regulariser, weighted by beta = 1). Without ``pair``: a random pair,
        the one drawn at the last training forward when ``fuse_cosine`` computed it there."""
        if pair is None and self._last_cos is not None:
            return self._last_cos
        self._check_cosine()
        i, j = self.sample_pair() if pair is None else pair
        self.last_pair = (i, j)
        a, b = self.vertices[i].tensors(), self.vertices[j].tensors()
        return regularizers.cosine_squared([a[s] for s in self.cosine_slots], [b[s] for s in self.cosine_slots])

    def _check_cosine(self) -> None:
        if self.num_vertices < 2 or not self.cosine_slots:
            raise ValueError("the cosine needs two vertices and a convolution or linear layer")

    def volume_sq(self) -> torch.Tensor:
        """V^2 of the simplex of all vertices, every parameter counted (SPRO), from Cayley-Menger."""
        return regularizers.volume_sq([v.tensors() for v in self.vertices], self._volume_cache)

    def log_volume(self, eps: float = regularizers.VOLUME_EPS) -> torch.Tensor:
        """log(V^2 + eps): SPRO subtracts lambda times this from the loss."""
        return torch.log(self.volume_sq() + eps)

    def regularizer(self, wd: float = 0.0, beta: float = 0.0, lam: float = 0.0):
        """``wd * l2 + beta * cos^2(random pair) - lam * log(V^2 + 1e-4)``, as the ``regularizer``
        callable of ``utils.train_epoch`` (the L2 term at the last forward's point). With beta,
        training forwards compute the cosine with the combination from now on (``fuse_cosine``)."""
        if beta:
            self._check_cosine()
            self.fuse_cosine = True

        def term() -> torch.Tensor:
            if self._last_sq is None:
                raise RuntimeError("the regularizer needs a forward pass first")
            # no L2 term at all when wd is 0: the combination's backward then skips its buffer
            total = self.l2(wd) if wd else torch.zeros_like(self._last_sq)
            if beta:
                total = total + beta * self.cosine()
            if lam:
                total = total - lam * self.log_volume().to(total.dtype)
            return total
        return term

    def extra_repr(self) -> str:
        return (f"shape={self.shape}, num_vertices={self.num_vertices}, fixed={self.fixed_vertices}, "
                f"layerwise={self.layerwise}, weights={self.num_weights}")


class CurveModel(SubspaceModel):
    """A curve of ``num_bends`` bends through the weight space of ``module`` (Garipov et al.).

    ``fix_start`` / ``fix_end``: the end bends are buffers, never trained. ``forward(x, t)``
    runs the module at t; in training mode with t None, t ~ U(0, 1) is drawn from the
    model's generator (one per batch).
    """

    vertices_attribute = "bends"

    def __init__(self, module: nn.Module, curve: str = "Bezier", num_bends: int = 3,
                 fix_start: bool = True, fix_end: bool = True, seed: int | None = None):
        if curve not in coeffs.CURVES:
            raise ValueError(f"unknown curve {curve!r} (choose from {', '.join(coeffs.CURVES)})")
        if num_bends < 2:
            raise ValueError(f"a curve needs at least 2 bends (got {num_bends})")
        fixed = [k for k, f in ((0, fix_start), (num_bends - 1, fix_end)) if f]
        super().__init__(module, curve, num_bends, fixed, seed=seed)
        self.curve, self.fix_start, self.fix_end = curve, bool(fix_start), bool(fix_end)

    num_bends = SubspaceModel.num_vertices  # and self.bends is the registered ModuleList itself
    fixed_bends = SubspaceModel.fixed_vertices
    free_bends = SubspaceModel.free_vertices
    bend = SubspaceModel.vertex
    bends_matrix = SubspaceModel.vertices_matrix
    load_bend = SubspaceModel.load_vertex

    @torch.no_grad()
    def init_linear(self) -> None:
        """Put the middle bends evenly on the segment: w_k = (1 - k/(n-1)) w_0 + k/(n-1) w_{n-1}."""
        first, last = self.bends[0].tensors(), self.bends[-1].tensors()
        for k in range(1, self.num_bends - 1):
            for tensor, a, b in zip(self.bends[k].tensors(), first, last):
                tensor.copy_(torch.lerp(a, b, k / (self.num_bends - 1)))

    def extra_repr(self) -> str:
        return (f"curve={self.curve}, num_bends={self.num_bends}, fix_start={self.fix_start}, "
                f"fix_end={self.fix_end}, weights={self.num_weights}")
