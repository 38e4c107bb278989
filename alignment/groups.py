"""The permutation symmetries of a network, read from its torch.fx graph: no per-model spec.

The hidden units (output channels) of a network can be permuted without changing its
function, provided every tensor that carries them is permuted alike: the producing
layer's weight rows and bias, a BatchNorm's four vectors, the next layers' weight
columns. Git Re-Basin writes these "permutation specs" by hand for each architecture;
here they are found by following each channel through the graph:

- every convolution or linear layer creates new units, one per output channel;
- channel-wise operations (BatchNorm, ReLU and other elementwise functions, pooling,
  dropout) pass them on; a BatchNorm's vectors carry them;
- an addition (a residual connection) says the channels it adds are one unit;
- zero padding of channels (the option-A shortcut of the CIFAR ResNets) adds channels
  that are no unit, so the padded channels of the sum keep the units of the other summand
  alone; a channel slice or concatenation moves units to other positions;
- flattening a (C, H, W) map into a vector expands each channel into its H * W positions,
  which the linear layer's columns then carry together (as a block of k columns);
- the network's input channels and its outputs are fixed: never permuted.

The units end in classes (a union-find over the additions). Two classes can be swapped
exactly when they occur in the same tensors (parameters and activations alike) at
corresponding places; a **group** is a set of such classes, permuted together by one
permutation. Any other operation a channel meets is a ``ValueError`` that names the node
and its layer: the analysis never guesses.

This module is long (about 500 lines) because the walk over the graph is one algorithm: the
rules for each kind of node share the unit bookkeeping, and splitting them apart would scatter it.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.passes.shape_prop import ShapeProp

ZERO = -1  # a channel that is no unit: zero padding


@dataclass(frozen=True)
class Axis:
    """Where a group lives in one tensor of the state dict: ``index[i, s]`` is the position
    along ``dim`` of the group's unit ``i`` (its ``s``-th spatial copy after a flatten)."""

    key: str
    dim: int
    index: torch.Tensor  # (size, k) int64


@dataclass(frozen=True)
class Site:
    """An activation that carries a group: the output of graph node ``node``, its unit ``i`` in
    channel ``index[i]`` (dim 1). Activation matching measures the group there."""

    node: str
    index: torch.Tensor  # (size,) int64


@dataclass(frozen=True)
class Group:
    """One permutation symmetry: ``size`` units that every tensor in ``axes`` carries.

    ``layers``: the modules whose outputs create the units (a residual stream has several);
    ``sites``: the activations after a nonlinearity that carry them (else the first activation
    that does), where activation matching compares networks.
    """

    name: str
    size: int
    layers: tuple[str, ...]
    axes: tuple[Axis, ...]
    sites: tuple[Site, ...]


@dataclass
class Symmetries:
    """What ``analyse`` finds: the groups, the convolution and linear layers in graph order, those
    of them whose outputs are the network's outputs (never permuted, never rescaled), and the
    traced graph (whose node names ``Site`` uses)."""

    groups: list[Group]
    layers: list[str]
    output_layers: list[str]
    graph: fx.GraphModule


def find_groups(model: nn.Module, example_input: torch.Tensor) -> list[Group]:
    """The permutation groups of ``model`` (see the module's docstring); ``example_input`` is a
    batch of the shape the model takes (one image suffices), run once to learn the shapes."""
    return analyse(model, example_input).groups


def analyse(model: nn.Module, example_input: torch.Tensor) -> Symmetries:
    """Trace ``model``, follow its channels, and return its ``Symmetries``."""
    try:
        graph = fx.symbolic_trace(model)
    except Exception as exc:  # data-dependent control flow and the like
        raise ValueError(f"torch.fx cannot trace {type(model).__name__}: {type(exc).__name__}: {exc}") from exc
    was_training = model.training
    model.eval()  # the shape pass must not touch BatchNorm's running statistics
    try:
        with torch.no_grad():
            ShapeProp(graph).propagate(example_input)
    finally:
        model.train(was_training)
    return _Channels(graph).result()


# --------------------------------------------------------------------------- operations

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM = (nn.modules.batchnorm._BatchNorm,)
_NONLINEAR_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                      nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus)
_PASS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                 nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                 nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
                 nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_NONLINEAR_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu,
                        F.gelu, F.silu, F.mish, F.hardtanh, F.hardswish, F.hardsigmoid, F.softplus, torch.sigmoid,
                        F.sigmoid, torch.tanh, F.tanh}
_PASS_FUNCTIONS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.max_pool1d, F.max_pool2d, F.max_pool3d,
                   F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
                   F.adaptive_avg_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d}
_NONLINEAR_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_"}
_PASS_METHODS = {"contiguous", "clone", "detach", "float", "half", "bfloat16", "double"}
_ADD = {operator.add, operator.iadd, operator.sub, operator.isub, torch.add, torch.sub, "add", "add_", "sub", "sub_"}
_MUL = {operator.mul, operator.imul, operator.truediv, operator.itruediv, torch.mul, torch.div,
        "mul", "mul_", "div", "div_"}
_REDUCE = {torch.mean, torch.sum, torch.amax, torch.amin, "mean", "sum", "amax", "amin"}
_QUERIES = {"size", "dim", "numel"}  # methods whose result is no tensor and says nothing about channels


class _Labels:
    """The units of a tensor's channels (dim 1): ``units[c]`` (``ZERO`` for padding) and which
    spatial copy ``subs[c]`` of it channel c is (0 unless a flatten expanded it)."""

    __slots__ = ("units", "subs")

    def __init__(self, units: np.ndarray, subs: np.ndarray):
        self.units, self.subs = units, subs

    def __len__(self) -> int:
        return len(self.units)

    def __getitem__(self, key) -> "_Labels":
        return _Labels(self.units[key], self.subs[key])

    @staticmethod
    def cat(parts: list["_Labels"]) -> "_Labels":
        return _Labels(np.concatenate([p.units for p in parts]), np.concatenate([p.subs for p in parts]))


def _shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _where(node: fx.Node) -> str:
    """The node, and the layer it belongs to, for error messages."""
    stack = node.meta.get("nn_module_stack") or {}
    layer = node.target if node.op == "call_module" else (list(stack)[-1] if stack else "")
    return f"node {node.name!r}" + (f" in layer {layer!r}" if layer else "")


def _target_name(node: fx.Node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", repr(target))


class _Channels:
    """One pass over the graph, labelling every tensor's channels with units (see ``_Labels``)."""

    def __init__(self, graph: fx.GraphModule):
        self.graph = graph
        self.modules = dict(graph.named_modules())
        self.parent: list[int] = []  # union-find over units
        self.producer: list[str] = []  # the module that created each unit
        self.fixed: set[int] = set()  # units of the network's inputs and outputs
        self.labels: dict[fx.Node, _Labels] = {}
        self.params: list[tuple[str, int, _Labels]] = []  # (state-dict key, dim, labels) in graph order
        self.seen_params: dict[tuple[str, int], _Labels] = {}
        self.nonlinear: set[str] = set()  # names of the nodes that apply an elementwise nonlinearity
        self.layer_outputs: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ union-find
    def new_units(self, n: int, producer: str) -> _Labels:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        self.producer.extend([producer] * n)
        return _Labels(np.arange(start, start + n), np.zeros(n, dtype=np.int64))

    def find(self, u: int) -> int:
        root = u
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[u] != root:  # path compression
            self.parent[u], u = root, self.parent[u]
        return root

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    # ------------------------------------------------------------------ the pass
    def result(self) -> Symmetries:
        for node in self.graph.graph.nodes:
            labels = self.visit(node)
            if labels is not None:
                self.labels[node] = labels
        return self.collect()

    def labelled_args(self, node: fx.Node) -> list[fx.Node]:
        found = []
        fx.node.map_arg((node.args, node.kwargs), lambda a: found.append(a) if a in self.labels else None)
        return found

    def unknown(self, node: fx.Node, what: str):
        return ValueError(f"alignment cannot tell how {what} treats channels ({_where(node)}): "
                          "a permutation of its input could change the network's function")

    def visit(self, node: fx.Node) -> _Labels | None:
        shape = _shape(node)
        if node.op == "placeholder":
            if shape is None or len(shape) < 2:
                return None
            labels = self.new_units(shape[1], "input")
            self.fixed.update(labels.units.tolist())
            return labels
        if node.op == "output":
            for arg in self.labelled_args(node):
                self.fixed.update(u for u in self.labels[arg].units.tolist() if u != ZERO)
            return None
        if node.op == "get_attr":
            return None  # a tensor of the module used directly: it carries no unit (see combine())
        if node.op == "call_module":
            return self.visit_module(node, shape)
        return self.visit_function(node, shape)

    def visit_module(self, node: fx.Node, shape) -> _Labels | None:
        module, name = self.modules[node.target], node.target
        inputs = self.labelled_args(node)
        x = self.labels.get(node.args[0]) if node.args else None
        if isinstance(module, _CONV + (nn.Linear,)):
            if x is None or len(inputs) != 1:
                raise ValueError(f"layer {name!r} reads something other than one tensor of the network "
                                 f"({_where(node)})")
            if isinstance(module, _CONV) and module.groups != 1:
                raise ValueError(f"layer {name!r} is a grouped convolution (groups={module.groups}): "
                                 "alignment handles groups=1 only")
            in_shape = _shape(node.args[0])
            if isinstance(module, nn.Linear) and len(in_shape) != 2:
                raise ValueError(f"layer {name!r} is a Linear layer on a tensor of shape {in_shape}: "
                                 "alignment follows features of (batch, features) inputs only")
            self.param(f"{name}.weight", 1, x)
            if name in self.layer_outputs:  # a layer called again: its rows, so its units, are the same
                return _Labels(self.layer_outputs[name], np.zeros(shape[1], dtype=np.int64))
            out = self.new_units(shape[1], name)
            self.layer_outputs[name] = out.units
            self.param(f"{name}.weight", 0, out)
            if module.bias is not None:
                self.param(f"{name}.bias", 0, out)
            return out
        if isinstance(module, _NORM):
            x = self.require(node, x, inputs, "BatchNorm")
            padded = x.units == ZERO
            if padded.any():  # BatchNorm of a zero channel is a constant made by its parameters: a new unit
                x = _Labels(x.units.copy(), x.subs.copy())
                x.units[padded] = self.new_units(int(padded.sum()), name).units
            for tensor in ("weight", "bias", "running_mean", "running_var"):
                if getattr(module, tensor, None) is not None:
                    self.param(f"{name}.{tensor}", 0, x)
            return x
        if isinstance(module, _NONLINEAR_MODULES):
            return self.elementwise(node, x, inputs, "activation", module)
        if isinstance(module, _PASS_MODULES):
            if getattr(module, "return_indices", False):
                raise self.unknown(node, f"{type(module).__name__} with return_indices")
            return self.elementwise(node, x, inputs, "pass", module)
        if isinstance(module, nn.Flatten):
            return self.flatten(node, x, module.start_dim, module.end_dim)
        if inputs:
            raise ValueError(f"alignment does not know layer {name!r} ({type(module).__name__}), "
                             f"so it cannot tell how it treats channels ({_where(node)})")
        return None

    def param(self, key: str, dim: int, labels: _Labels) -> None:
        """Record that ``labels`` run along ``dim`` of the parameter ``key``. A layer used twice sees
        two inputs through the same weights: channel c of both is one unit."""
        seen = self.seen_params.get((key, dim))
        if seen is None:
            self.seen_params[(key, dim)] = labels
            self.params.append((key, dim, labels))
            return
        if len(seen) != len(labels) or (seen.subs != labels.subs).any():
            raise ValueError(f"{key} is used twice on differently shaped inputs")
        for a, b in zip(seen.units.tolist(), labels.units.tolist()):
            if a != ZERO and b != ZERO:
                self.union(a, b)
            elif a != b:
                raise ValueError(f"{key} is used twice, once on zero padding")

    def require(self, node, x, inputs, what) -> _Labels:
        if x is None or len(inputs) != 1:
            raise self.unknown(node, what + " on this input")
        return x

    def elementwise(self, node, x, inputs, kind, what) -> _Labels:
        x = self.require(node, x, inputs, what if isinstance(what, str) else type(what).__name__)
        if kind == "activation":
            self.nonlinear.add(node.name)
        return x

    def visit_function(self, node: fx.Node, shape) -> _Labels | None:
        target = node.target
        inputs = self.labelled_args(node)
        if not inputs:
            return None  # sizes, constants: nothing of the network's channels
        name = _target_name(node)
        x = self.labels.get(node.args[0]) if node.args else None
        method = node.op == "call_method"
        if (method and target in _NONLINEAR_METHODS) or (not method and target in _NONLINEAR_FUNCTIONS):
            return self.elementwise(node, x, inputs, "activation", name)
        if (method and target in _PASS_METHODS) or (not method and target in _PASS_FUNCTIONS):
            if not method and node.kwargs.get("return_indices"):
                raise self.unknown(node, f"{name} with return_indices")
            return self.elementwise(node, x, inputs, "pass", name)
        if method and target in _QUERIES:
            return None
        if not method and target is getattr and node.args[1] in ("shape", "dtype", "device"):
            return None
        if target in _ADD or target in _MUL:
            return self.combine(node, target in _MUL)
        if target in _REDUCE:
            return self.reduce(node, x, inputs, shape)
        if target in (torch.flatten, "flatten"):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return self.flatten(node, self.require(node, x, inputs, name), start, end)
        if target in ("view", "reshape") or target is torch.reshape:
            return self.reshape(node, self.require(node, x, inputs, name), shape)
        if target is operator.getitem:
            return self.getitem(node, self.require(node, x, inputs, "indexing"))
        if target is F.pad:
            return self.pad(node, self.require(node, x, inputs, "F.pad"))
        if target is torch.cat:
            return self.cat(node)
        raise self.unknown(node, f"{'method .' if method else ''}{name}")

    # ------------------------------------------------------------------ rules
    def combine(self, node: fx.Node, product: bool) -> _Labels:
        """x + y (or x * y): channel c of the result is channel c of both, one unit. A scalar (or
        a one-element tensor) changes no channel; any other tensor is refused."""
        operands = list(node.args[:2])
        labelled = [self.labels[a] for a in operands if a in self.labels]
        for a in operands:
            if a in self.labels or not isinstance(a, fx.Node):
                continue
            other = _shape(a)
            if other is not None and int(np.prod(other)) != 1:
                raise self.unknown(node, f"{_target_name(node)} with a tensor that is not the network's "
                                         f"(shape {other})")
        if len(labelled) == 1:
            return labelled[0]
        x, y = labelled
        if len(x) != len(y):
            raise self.unknown(node, f"{_target_name(node)} of {len(x)} and {len(y)} channels (broadcast)")
        units, subs = x.units.copy(), x.subs.copy()
        for c in range(len(x)):
            a, b = x.units[c], y.units[c]
            if a == ZERO or b == ZERO:
                units[c] = ZERO if product else max(a, b)
                subs[c] = x.subs[c] if a != ZERO else y.subs[c]
                continue
            if x.subs[c] != y.subs[c]:
                raise self.unknown(node, f"{_target_name(node)} of different positions of a flattened map")
            self.union(int(a), int(b))
        return _Labels(units, subs)

    def flatten(self, node, x: _Labels, start: int, end: int) -> _Labels:
        """Flattening (C, H, W) from dim 1: channel c becomes positions c * H * W + s, the s-th copy of its unit."""
        in_shape = _shape(node.args[0])
        rank = len(in_shape)
        start, end = start % rank, end % rank
        if start == 0:
            raise self.unknown(node, "a flatten that merges the batch with the channels")
        if start > 1 or end == 1:
            return x  # the channel dimension stays as it is
        spatial = int(np.prod(in_shape[2:end + 1]))
        steps = np.arange(spatial)
        return _Labels(np.repeat(x.units, spatial), (x.subs[:, None] * spatial + steps[None, :]).reshape(-1))

    def reshape(self, node, x: _Labels, shape) -> _Labels:
        in_shape = _shape(node.args[0])
        if shape[:2] == in_shape[:2]:
            return x  # (N, C, ...) -> (N, C, ...): the channels keep their places
        if len(shape) == 2 and shape[0] == in_shape[0] and shape[1] == int(np.prod(in_shape[1:])):
            return self.flatten(node, x, 1, -1)
        raise self.unknown(node, f"a reshape from {in_shape} to {shape}")

    def reduce(self, node, x, inputs, shape) -> _Labels:
        x = self.require(node, x, inputs, _target_name(node))
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        rank = len(_shape(node.args[0]))
        dims = [dims] if isinstance(dims, int) else list(dims or [])
        if not dims or any(d % rank in (0, 1) for d in dims) or shape is None or shape[1] != len(x):
            raise self.unknown(node, f"{_target_name(node)} over dims {dims or 'all'}")
        return x  # a pooling over spatial dimensions

    def getitem(self, node, x: _Labels) -> _Labels:
        index = node.args[1]
        index = index if isinstance(index, tuple) else (index,)
        if any(i is Ellipsis or i is None or isinstance(i, (fx.Node, torch.Tensor, list)) for i in index):
            raise self.unknown(node, f"indexing with {index}")
        if index and not isinstance(index[0], slice):
            raise self.unknown(node, f"indexing with {index} (it drops the batch dimension)")
        if len(index) < 2:
            return x
        if not isinstance(index[1], slice):
            raise self.unknown(node, f"indexing with {index} (it drops the channel dimension)")
        return x[index[1]]

    def pad(self, node, x: _Labels) -> _Labels:
        pad = node.args[1] if len(node.args) > 1 else node.kwargs["pad"]
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value")
        rank = len(_shape(node.args[0]))
        slot = 2 * (rank - 2)  # pad lists (left, right) pairs from the last dimension backwards
        if len(pad) <= slot:
            return x  # spatial padding only
        front, back = pad[slot], pad[slot + 1]
        if mode != "constant" or value not in (None, 0, 0.0):
            raise self.unknown(node, f"channel padding with mode={mode!r}, value={value!r}")
        x = x[max(0, -front):len(x) - max(0, -back)]  # negative padding crops
        zeros = lambda n: _Labels(np.full(n, ZERO), np.zeros(n, dtype=np.int64))  # noqa: E731
        return _Labels.cat([zeros(max(0, front)), x, zeros(max(0, back))])

    def cat(self, node) -> _Labels:
        tensors = node.args[0] if node.args else node.kwargs["tensors"]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if any(t not in self.labels for t in tensors):
            raise self.unknown(node, "torch.cat of tensors that are not all the network's")
        rank = len(_shape(tensors[0]))
        parts = [self.labels[t] for t in tensors]
        if dim % rank == 1:
            return _Labels.cat(parts)
        first = parts[0]
        for other in parts[1:]:  # joined along another dimension: channel c of each is one unit
            if len(other) != len(first):
                raise self.unknown(node, "torch.cat of different channel counts")
            for a, b in zip(first.units.tolist(), other.units.tolist()):
                if a != ZERO and b != ZERO:
                    self.union(a, b)
        return first

    # ------------------------------------------------------------------ groups
    def collect(self) -> Symmetries:
        roots = np.array([self.find(u) for u in range(len(self.parent))], dtype=np.int64)
        fixed = np.zeros(len(roots) + 1, dtype=bool)  # by root; the extra slot is ZERO's (-1)
        fixed[roots[sorted(self.fixed)]] = True
        fixed[-1] = True
        # Every place a unit class occurs, as rows (class, where, spatial copy, position); "where"
        # numbers the parameters' axes in graph order, then the activations.
        wheres = [("param", key, dim) for key, dim, _ in self.params] + \
                 [("activation", node.name, 1) for node in self.labels]
        tables = []
        for where, labels in enumerate([labels for _, _, labels in self.params] + list(self.labels.values())):
            root = np.where(labels.units == ZERO, -1, roots[np.maximum(labels.units, 0)])
            keep = ~fixed[root]
            tables.append(np.stack([root[keep], np.full(keep.sum(), where), labels.subs[keep],
                                    np.nonzero(keep)[0]], axis=1))
        table = np.concatenate(tables) if tables else np.zeros((0, 4), dtype=np.int64)
        table = table[np.lexsort((table[:, 2], table[:, 1], table[:, 0]))]  # by class, where, copy
        same = (table[1:, :3] == table[:-1, :3]).all(axis=1)
        if same.any():
            row = table[1:][same][0]
            raise ValueError(f"a unit appears twice in {wheres[row[1]][1]} (dim {wheres[row[1]][2]}): "
                             "alignment does not handle duplicated channels")
        # Classes that occur in the same tensors at the same spatial copies can be swapped: one group.
        starts = np.flatnonzero(np.r_[True, table[1:, 0] != table[:-1, 0]])
        ends = np.r_[starts[1:], len(table)]
        by_signature: dict[bytes, list[int]] = {}
        for start, end in zip(starts.tolist(), ends.tolist()):
            by_signature.setdefault(table[start:end, 1:3].tobytes(), []).append(start)
        producers_of = {}
        for unit, root in enumerate(roots.tolist()):  # unit ids grow in graph order
            producers_of.setdefault(root, []).append(unit)
        node_order = {node.name: i for i, node in enumerate(self.labels)}

        groups, names = [], {}
        first = lambda start: (table[start, 1], table[start, 3])  # noqa: E731  (where first seen, position)
        for starts_of_group in sorted(by_signature.values(), key=lambda g: min(first(s) for s in g)):
            starts_of_group.sort(key=first)
            length = ends[np.searchsorted(starts, starts_of_group[0])] - starts_of_group[0]
            positions = np.stack([table[s:s + length, 3] for s in starts_of_group])  # (n, places)
            columns = table[starts_of_group[0]:starts_of_group[0] + length, 1]
            members = [table[s, 0] for s in starts_of_group]
            units = sorted(u for r in members for u in producers_of[r])
            layers = tuple(dict.fromkeys(self.producer[u] for u in units))
            axes, sites = [], []
            for where in dict.fromkeys(columns.tolist()):
                index = torch.from_numpy(positions[:, columns == where].copy())
                kind, name, dim = wheres[where]
                if kind == "param":
                    axes.append(Axis(name, dim, index))
                elif index.shape[1] == 1:
                    sites.append(Site(name, index[:, 0]))
            sites.sort(key=lambda site: node_order[site.node])
            names[layers[0]] = names.get(layers[0], 0) + 1
            name = layers[0] if names[layers[0]] == 1 else f"{layers[0]}#{names[layers[0]]}"
            groups.append(Group(name, len(members), layers, tuple(axes), self.measured_sites(sites)))
        output_layers = [name for name, units in self.layer_outputs.items() if fixed[roots[units]].any()]
        return Symmetries(groups, list(self.layer_outputs), output_layers, self.graph)

    def measured_sites(self, sites: list[Site]) -> tuple[Site, ...]:
        """Where activation matching looks at a group: after each nonlinearity that carries it (Git
        Re-Basin and REPAIR match post-ReLU activations); without one, where it first appears."""
        chosen = [site for site in sites if site.node in self.nonlinear]
        return tuple(chosen or sites[:1])
