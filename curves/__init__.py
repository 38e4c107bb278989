"""Curves, lines and simplexes of networks in weight space, for any ``nn.Module``.

One weighted combination of vertices, sum_k c_k w_k (``SubspaceModel``), serves
mode connectivity (Garipov et al. 2018: ``CurveModel``), learned lines and simplexes
(Wortsman et al. 2021) and simplexes grown around a trained network (Benton et al. 2021):

    curve = CurveModel(build_model("VGG16", 10), "Bezier", num_bends=3)
    curve.load_bend(0, ckpt_a["model_state"]); curve.load_bend(2, ckpt_b["model_state"])
    curve.init_linear()
    logits = curve(x, t=0.3)          # t ~ U(0, 1) per call in training mode when not given
    w = curve.weights(0.3)            # flat weight vector phi(0.3)
    loss = nll + curve.l2(wd)         # 0.5 * wd * ||phi(t)||^2 at the last forward's t

    line = SubspaceModel(make(), "PolyChain", 2, seed=1)  # a line learned from scratch
    line.init_random(make)                                # each end its own initialisation
    regularizer = line.regularizer(beta=1.0)              # cos^2 of the ends' weights
    loss = F.cross_entropy(line(x), y) + regularizer()    # alpha ~ U(0, 1) drawn per call
    spro = SubspaceModel(trained, "simplex", 1, fixed=[0]); spro.add_vertex()
    logits = spro.eval()(x, coefficients=centroid(2))
"""
from curves.coefficients import CURVES, SHAPES, bezier, centroid, dirichlet, polychain
from curves.model import CurveModel, SubspaceModel, Vertex
from curves.regularizers import (VOLUME_EPS, cayley_menger_volume_sq, cosine_squared, reference_volumes_sq,
                                 spro_lambda, squared_distances, volume_sq)
from curves.stats import distance, distances, summarise
from curves.evaluate import evaluate_at, evaluate_point, evaluate_weights, point_predictions, recompute_batchnorm
from runtime.checkpoints import model_checkpoint


def curve_from_checkpoint(ckpt: dict, device="cpu") -> CurveModel:
    """Rebuild a 'curve' checkpoint (a dict from ``runtime.load_checkpoint``): bends, buffers, sampler."""
    from models import build_model

    module = build_model(ckpt["model"], ckpt["num_classes"], **ckpt["model_kwargs"])
    curve = CurveModel(module, ckpt["curve"], ckpt["num_bends"], ckpt["fix_start"], ckpt["fix_end"], seed=0)
    curve.load_state_dict(ckpt["model_state"])
    return curve.to(device)


def curve_checkpoint(curve: CurveModel, model_name: str, **fields) -> dict:
    """A 'curve' checkpoint: ``runtime.model_checkpoint``'s fields plus the curve's shape.

    ``fields``: num_classes, model_kwargs, dataset, transform, epoch, optimizer, args.
    """
    return model_checkpoint(model_name, curve, **fields, kind="curve", curve=curve.curve,
                                  num_bends=curve.num_bends, fix_start=curve.fix_start,
                                  fix_end=curve.fix_end)


def subspace_from_checkpoint(ckpt: dict, device="cpu") -> SubspaceModel:
    """Rebuild a 'subspace' checkpoint: vertices (as many as it had grown to), buffers, sampler."""
    from models import build_model

    module = build_model(ckpt["model"], ckpt["num_classes"], **ckpt["model_kwargs"])
    model = SubspaceModel(module, ckpt["shape"], ckpt["num_vertices"], ckpt["fixed"], ckpt["layerwise"], seed=0)
    model.load_state_dict(ckpt["model_state"])
    return model.to(device)


def subspace_checkpoint(model: SubspaceModel, model_name: str, **fields) -> dict:
    """A 'subspace' checkpoint: ``runtime.model_checkpoint``'s fields plus the subspace's shape,
    its number of vertices and which are frozen, and whether draws are layerwise."""
    return model_checkpoint(model_name, model, **fields, kind="subspace", shape=model.shape,
                                  num_vertices=model.num_vertices, fixed=model.fixed_vertices,
                                  layerwise=model.layerwise)


__all__ = ["CURVES", "SHAPES", "CurveModel", "SubspaceModel", "Vertex", "bezier", "polychain", "dirichlet",
           "centroid", "cayley_menger_volume_sq", "squared_distances", "volume_sq", "cosine_squared",
           "spro_lambda", "reference_volumes_sq", "VOLUME_EPS", "distance", "distances", "summarise",
           "curve_from_checkpoint", "curve_checkpoint", "subspace_from_checkpoint", "subspace_checkpoint",
           "evaluate_at", "evaluate_point", "evaluate_weights", "point_predictions", "recompute_batchnorm"]
