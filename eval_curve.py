"""Train loss and test error along a curve, or along the straight segment between two networks.

The paper's curve figure (VGG16, CIFAR-10): the trained Bezier curve stays low
where the segment rises; the int column is Table 1's length-weighted average:

    python eval_curve.py --dir=runs/vgg16-curve/eval --ckpt=runs/vgg16-curve/checkpoint-600.pt \
        --data_path=data --use_test --num_points=61
    python eval_curve.py --dir=runs/vgg16-segment --data_path=data --use_test \
        --init_start=runs/vgg16-seed1/checkpoint-200.pt --init_end=runs/vgg16-seed2/checkpoint-200.pt

At each t: BatchNorm statistics recomputed on the training data (when the model
has BatchNorm), then train loss (NLL + 0.5 * wd * ||phi(t)||^2), NLL and error,
and test NLL and error. As in the original code, the training images are
augmented (random crops and flips, in order; fresh draws for each pass) for the
BatchNorm update and the train figures; --train_eval plain uses them as they are.
The test images are never augmented. dl is the distance between consecutive
points' weights. --ensemble adds the accuracy and NLL of the mean of
the softmax predictions over all points (the paper's curve ensemble).
Writes curve.npz, curve.csv, curve.png, metrics.csv and summary.json in --dir.

The straight line through two networks beyond both ends (the SWA paper's Figure 6, through
SGD's and SWA's solutions): --t_min and --t_max (defaults 0 and 1, the segment) extend the
segment to (1 - t) w_start + t w_end for t from t_min <= 0 to t_max >= 1:

    python eval_curve.py --dir=runs/sgd-swa-line --data_path=data --use_test --t_min=-1 --t_max=2 \
        --init_start=runs/swa/swa.pt --init_end=runs/sgd/checkpoint-225.pt

The --num_points values of t include 0 and 1 exactly: evenly spaced within [t_min, 0], [0, 1]
and [1, t_max], the points shared in proportion to their lengths (curves.line_points; with
61 points over [-1, 2], steps of 0.05). The L2 term is that of the point's own weights. In
summary.json start and end are the figures at t = 0 and t = 1 (the two networks), min, max,
avg and int are over all the points from t_min to t_max, and length is the whole line's,
(t_max - t_min) * ||w_end - w_start||. curve.png marks the networks at t = 0 and t = 1. A
trained curve (--ckpt) is defined on [0, 1] only, as in the original code.

Stopped by SIGTERM or SIGUSR1 (exit 75 after the current point) or killed, the same command
continues after the last point evaluated (points.pt), to the uninterrupted run's figures.
"""
from __future__ import annotations

import runtime  # first: from here on SIGTERM and SIGUSR1 are remembered, not fatal (runtime.signals)

import csv
import os

import numpy as np
import torch

import alignment
import cli
import curves
import models
import utils
from runtime.errors import UserError

# arrays of curve.npz, in order; a point's record has "t" where the file has "ts"
COLUMNS = ["ts", "dl", "tr_loss", "tr_nll", "tr_acc", "tr_err", "te_loss", "te_nll", "te_acc", "te_err"]
# summary.json name -> per-point record key
SUMMARY = {"train_loss": "tr_loss", "train_err": "tr_err", "test_nll": "te_nll", "test_err": "te_err"}


points_type = cli.int_at_least(2, "points")


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Loss and error along a curve or a straight segment.")
    cli.add_run_arguments(parser, default_dir="runs/eval_curve")
    cli.add_data_arguments(parser, from_checkpoint=True)
    cli.add_model_argument(parser, required=False)
    group = parser.add_argument_group("Curve")
    group.add_argument("--ckpt", default=None, metavar="CKPT", help="curve checkpoint (train_curve.py)")
    group.add_argument("--init_start", default=None, metavar="CKPT",
                       help="without --ckpt: start of the straight segment (a model checkpoint)")
    group.add_argument("--init_end", default=None, metavar="CKPT", help="without --ckpt: its end")
    group.add_argument("--curve", choices=sorted(curves.CURVES), default=None,
                       help="must match the checkpoint (default: the checkpoint's)")
    group.add_argument("--num_bends", type=int, default=None, help="must match the checkpoint")
    group.add_argument("--num_points", type=points_type, default=61,
                       help="number of values of t in [0, 1] (in [t_min, t_max] on the extended segment)")
    group.add_argument("--t_min", type=float, default=0.0,
                       help="without --ckpt: the first t, at most 0; below 0 the line goes on beyond --init_start")
    group.add_argument("--t_max", type=float, default=1.0,
                       help="without --ckpt: the last t, at least 1; above 1 the line goes on beyond --init_end")
    group.add_argument("--wd", type=cli.non_negative_float, default=None,
                       help="weight of the L2 term in the train loss (default: the training run's, else 1e-4)")
    group.add_argument("--ensemble", action="store_true", help="also evaluate the ensemble along the curve")
    group.add_argument("--repair", action="store_true",
                       help="on the segment between networks without BatchNorm: REPAIR (Jordan et al. 2023) at "
                            "every point, each hidden channel's mean and std reset to the interpolation of the "
                            "endpoints', measured on the training images as they are (with BatchNorm, the "
                            "statistics recomputed at every point already do this)")
    cli.add_train_eval_argument(group)
    return parser


def load_checkpoints(args) -> dict:
    """The curve's checkpoint (--ckpt), or the segment's two (--init_start, --init_end), by path; the
    flags they determine settled. Files or run folders (their latest checkpoints)."""
    if args.ckpt and (args.init_start or args.init_end):
        raise UserError("give either --ckpt (a curve) or --init_start and --init_end (a segment), not both")
    for flag in ("ckpt", "init_start", "init_end"):
        if getattr(args, flag):
            setattr(args, flag, runtime.resolve_checkpoint_path(getattr(args, flag)))
    if args.ckpt:
        ckpt = runtime.load_checkpoint(args.ckpt, kind="curve", model=args.model)
        cli.resolve_from_checkpoint(args, ckpt, args.ckpt, ("model", "dataset", "transform", "curve", "num_bends"))
        checkpoints, trained_wd = {args.ckpt: ckpt}, ckpt["args"].get("wd")
    elif args.init_start and args.init_end:
        if args.curve not in (None, "PolyChain") or args.num_bends not in (None, 2):
            raise UserError("the straight segment is a PolyChain of 2 bends: leave out --curve and --num_bends")
        args.curve, args.num_bends = "PolyChain", 2
        checkpoints = {}
        for path in (args.init_start, args.init_end):
            checkpoints[path] = runtime.load_checkpoint(path, kind="model", model=args.model)
            cli.resolve_from_checkpoint(args, checkpoints[path], path)
        start, end = checkpoints[args.init_start], checkpoints[args.init_end]
        if start["model_kwargs"] != end["model_kwargs"]:
            raise UserError(f"{args.init_start} holds {args.model}({start['model_kwargs']}), {args.init_end} "
                            f"{args.model}({end['model_kwargs']}): the segment needs one architecture")
        trained_wd = start["args"].get("wd")
    else:
        raise UserError("give --ckpt CURVE, or --init_start A --init_end B for the straight segment")
    check_range(args)
    if args.repair:
        check_repair(args, checkpoints)
    cli.resolve_split(args, False, checkpoints, evaluation_only=True)
    if args.wd is None:
        args.wd = trained_wd if trained_wd is not None else 1e-4
    return checkpoints


def check_range(args) -> None:
    """--t_min and --t_max: on the segment only, a range that holds 0 and 1 and the points to mark them."""
    if (args.t_min, args.t_max) == (0.0, 1.0):
        return
    if args.ckpt:
        raise UserError(f"--t_min/--t_max: {args.ckpt} is a trained {args.curve} curve, defined for t in [0, 1] "
                        "only; the line beyond its ends is the straight segment's (--init_start, --init_end)")
    try:
        curves.line_points(args.t_min, args.t_max, args.num_points)
    except ValueError as exc:
        raise UserError(f"--t_min={args.t_min:g} --t_max={args.t_max:g} --num_points={args.num_points}: {exc}") from exc


def check_repair(args, checkpoints: dict) -> None:
    """--repair: on the segment, for t in [0, 1] (the endpoints' statistics are interpolated, not
    extrapolated), for a network without BatchNorm."""
    if args.ckpt:
        raise UserError("--repair interpolates two networks' statistics: give the segment (--init_start, "
                        "--init_end), not a trained curve")
    if args.t_min < 0.0 or args.t_max > 1.0:
        raise UserError("--repair interpolates the endpoints' statistics: t from 0 to 1 only")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("--repair measures the statistics in one process: start it without torchrun")
    start = checkpoints[args.init_start]
    if utils.has_batchnorm(models.model_from_checkpoint(start)):
        raise UserError(f"{start['model']} has BatchNorm, recomputed at every point of the segment, which is what "
                        "REPAIR does for networks without it: leave out --repair")


class Repaired:
    """REPAIR along the segment: the endpoints' channel statistics, measured once on ``loader``'s
    images, and at each t a plain network with the segment's weights, rescaled to their interpolation."""

    def __init__(self, checkpoints: list[dict], loader, device, amp=None):
        nets = [models.model_from_checkpoint(c, device).eval() for c in checkpoints]
        kwargs = checkpoints[0]["model_kwargs"]
        example = torch.zeros(1, kwargs.get("in_channels", 3), kwargs.get("image_size", 32),
                              kwargs.get("image_size", 32), device=device)
        try:
            self.layers = alignment.repair_layers(alignment.analyse(nets[0], example))
        except ValueError as exc:
            raise UserError(f"--repair on {checkpoints[0]['model']}: {exc}") from exc
        self.autocast = lambda: utils.autocast(device, amp)
        self.loader = loader
        self.stats = [alignment.channel_statistics(net, self.layers, loader, self.autocast) for net in nets]
        self.net = nets[0]

    def at(self, curve: curves.CurveModel, t: float) -> torch.nn.Module:
        """The network at t, repaired (one plain module, overwritten point by point)."""
        self.net.load_state_dict(curve.module_state(t))
        alignment.repair(self.net, alignment.goal_statistics(*self.stats, t), self.loader, self.autocast)
        return self.net


def point_of(t: float):
    """The curve's point at t: t itself on [0, 1]; beyond, the segment's coefficients (1 - t, t),
    which its 2-bend PolyChain would clamp to (0, 0) (curves.line)."""
    return t if 0.0 <= t <= 1.0 else curves.line(t)


def build_curve(args, checkpoints: dict, dataset, device) -> curves.CurveModel:
    """The curve of --ckpt, or the straight segment: a 2-bend PolyChain between the two networks."""
    if args.ckpt:
        curve = curves.curve_from_checkpoint(checkpoints[args.ckpt], device)
    else:
        start = checkpoints[args.init_start]  # its constructor's arguments (an MLP's width) too
        module = models.build_model(start["model"], start["num_classes"], **start["model_kwargs"]).to(device)
        curve = curves.CurveModel(module, "PolyChain", 2, True, True)
        curve.load_bend(0, checkpoints[args.init_start]["model_state"])
        curve.load_bend(1, checkpoints[args.init_end]["model_state"])
    if args.channels_last:
        curve.to(memory_format=torch.channels_last)
    return curve


def write_outputs(directory: str, records: list[dict], title: str = "") -> None:
    """curve.npz (arrays built once from the records), curve.csv and curve.png."""
    arrays = {key: np.array([r["t" if key == "ts" else key] for r in records]) for key in COLUMNS}
    with runtime.atomic_open(os.path.join(directory, "curve.npz"), "wb") as f:
        np.savez(f, **arrays)
    with runtime.atomic_open(os.path.join(directory, "curve.csv")) as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    plot(os.path.join(directory, "curve.png"), arrays, title)


def plot(path: str, arrays: dict, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    ts = arrays["ts"]
    ends = [int(np.flatnonzero(ts == 0.0)[0]), int(np.flatnonzero(ts == 1.0)[0])]  # the two networks
    beyond = ts[0] < 0.0 or ts[-1] > 1.0
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, key, label, colour in ((left, "tr_loss", "train loss", "tab:blue"),
                                   (right, "te_err", "test error (%)", "tab:red")):
        ax.plot(ts, arrays[key], color=colour, lw=2)
        if beyond:  # the line past the two networks, shaded
            for low, high in ((ts[0], 0.0), (1.0, ts[-1])):
                if high > low:
                    ax.axvspan(low, high, color="0.9", zorder=0)
        ax.plot(ts[ends], arrays[key][ends], "o", color="black", ms=7,
                label="the two networks (t = 0, 1)" if beyond else "endpoints")
        ax.set_xlabel("t")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    checkpoints = load_checkpoints(args)
    opened = cli.open_run(args, "eval_curve", saves=True, networks=checkpoints)
    if opened is None:  # finished: nothing to do
        return
    procs, run, dataset, loaders = opened
    curve = build_curve(args, checkpoints, dataset, procs.device)
    amp = runtime.autocast_type(args)
    # a run stopped or killed goes on after its last point: the points so far, and the ensemble's sum
    records, state = run.resume_points()
    ensemble = state["ensemble"].numpy() if "ensemble" in state else None
    table = cli.Table(["t", "tr_loss", "tr_nll", "tr_err", "te_nll", "te_err", "dl"])

    ts = curves.line_points(args.t_min, args.t_max, args.num_points)  # np.linspace(0, 1, n) by default
    previous = None
    if records:  # dl needs the last point's weights: recomputed from its t
        with torch.no_grad():
            previous = curve.weights(point_of(float(ts[len(records) - 1])))
    train_loader = cli.train_eval_loader(args, loaders)
    repaired = None
    if args.repair:  # measured again by a continued run: the same images, the same statistics
        repaired = Repaired([checkpoints[args.init_start], checkpoints[args.init_end]], loaders["train_eval"],
                            procs.device, amp)
    for i, t in enumerate(cli.progress(ts[len(records):].tolist(), "points", initial=len(records), total=len(ts)),
                          len(records)):
        with torch.no_grad():
            weights = curve.weights(point_of(t))
        dl = 0.0 if previous is None else curves.distance(previous, weights)  # one point's weights held, not all
        previous = weights
        if repaired is None:
            point, probs = curves.evaluate_point(curve, point_of(t), train_loader, loaders["test"], args.wd, amp,
                                                 draw=i)
        else:  # the repaired network's own weights, and their L2 term
            net = repaired.at(curve, t)
            l2 = 0.5 * args.wd * float(sum((p.detach().double() ** 2).sum() for p in net.parameters()))
            point, probs = curves.evaluate_weights(net, net, train_loader, loaders["test"], l2=l2, amp=amp, draw=i)
        point = {"t": t, "dl": dl, **{k: v for k, v in point.items() if k != "t"}}
        if args.ensemble:
            ensemble = probs if ensemble is None else ensemble + probs
        records.append(point)
        table.print(point)
        run.point_done(point, {"ensemble": torch.from_numpy(ensemble)} if args.ensemble else None)

    if run.path("curve.npz"):
        path = "straight segment" if not args.ckpt else f"{args.curve} curve, {args.num_bends} bends"
        if (args.t_min, args.t_max) != (0.0, 1.0):
            path = f"the line through the two networks (t = 0, 1), t from {args.t_min:g} to {args.t_max:g}"
        if args.repair:
            path += ", REPAIRed"
        write_outputs(args.dir, records, f"{args.model} on {args.dataset}: {path}")
    dl = [r["dl"] for r in records]
    summary = {"length": float(sum(dl))}
    ends = (int(np.flatnonzero(ts == 0.0)[0]), int(np.flatnonzero(ts == 1.0)[0]))  # (0, -1) on [0, 1]
    for name, key in SUMMARY.items():
        summary[name] = curves.summarise([r[key] for r in records], dl, ends)
    if args.ensemble:
        labels = loaders["test"].labels
        metrics = utils.prediction_metrics(ensemble / len(records), labels.cpu().numpy())
        summary.update({"ens_acc": metrics["accuracy"], "ens_nll": metrics["nll"], "ens_size": len(records)})
        if procs.is_main:
            print(f"ensemble of {len(records)} points: accuracy {metrics['accuracy']:.2f}%, NLL {metrics['nll']:.4f}")
    if procs.is_main:
        print(f"length {summary['length']:.4f}; " + "; ".join(
        f"{name} start {s['start']:.4f} max {s['max']:.4f} int {s['int']:.4f}"
            for name, s in summary.items() if isinstance(s, dict)))
    run.finish(summary)


if __name__ == "__main__":
    cli.run(main)
