"""Curves in weight space between two networks (Garipov et al., 2018), for any ``nn.Module``.

    from curves import CurveModel, bezier, polychain, curve_from_checkpoint
    curve = CurveModel(build_model("VGG16", 10), "Bezier", num_bends=3)
    curve.load_bend(0, ckpt_a["model_state"]); curve.load_bend(2, ckpt_b["model_state"])
    curve.init_linear()
    logits = curve(x, t=0.3)          # t ~ U(0, 1) per call in training mode when not given
    w = curve.weights(0.3)            # flat weight vector phi(0.3)
    loss = nll + curve.l2(wd)         # 0.5 * wd * ||phi(t)||^2 at the last forward's t
"""
from curves.coefficients import CURVES, bezier, polychain
from curves.model import CurveModel
from curves.stats import distance, distances, summarise


def curve_from_checkpoint(ckpt: dict, device="cpu") -> CurveModel:
    """Rebuild a 'curve' checkpoint (a dict from ``utils.load_checkpoint``): bends and buffers."""
    from models import build_model

    module = build_model(ckpt["model"], ckpt["num_classes"], **ckpt["model_kwargs"])
    curve = CurveModel(module, ckpt["curve"], ckpt["num_bends"], ckpt["fix_start"], ckpt["fix_end"])
    curve.load_state_dict(ckpt["model_state"])
    return curve.to(device)


def curve_checkpoint(curve: CurveModel, model_name: str, **fields) -> dict:
    """A 'curve' checkpoint: ``utils.model_checkpoint``'s fields plus the curve's shape.

    ``fields``: num_classes, model_kwargs, dataset, transform, epoch, optimizer, args.
    """
    import utils

    return utils.model_checkpoint(model_name, curve, **fields, kind="curve", curve=curve.curve,
                                  num_bends=curve.num_bends, fix_start=curve.fix_start,
                                  fix_end=curve.fix_end)


__all__ = ["CURVES", "CurveModel", "bezier", "polychain", "distance", "distances", "summarise",
           "curve_from_checkpoint", "curve_checkpoint"]
