"""Train loss and test error over the plane through the three bends of a curve (the paper's Figures 1 and 2).

The plane of a VGG16 Bezier curve on CIFAR-10, as in the paper (the curve from train_curve.py):

    python plane.py --dir=runs/vgg16-plane --dataset=CIFAR10 --data_path=data --transform=VGG \
        --model=VGG16 --curve=Bezier --num_bends=3 --ckpt=runs/vgg16-curve/checkpoint-600.pt \
        --wd=5e-4 --use_test

On the DIGITS demo's ConvFC Bezier curve (`make demo`; 30-70 s on a CPU; docs/plane.png),
or the plane through three independently trained networks (--ckpt three times):

    python plane.py --dir=runs/demo/plane --ckpt=runs/demo/curve/checkpoint-10.pt --use_test
    python plane.py --dir=runs/plane3 --ckpt=a.pt --ckpt=b.pt --ckpt=c.pt --use_test

At each grid point: BatchNorm statistics recomputed for its weights, then the train loss
(NLL + 0.5 * wd * ||w||^2, as on a curve) and error, and the test NLL and error. As in the
original code, the BatchNorm update and the train figures use the training images augmented
(random crops and flips, in order); --train_eval plain uses them as they are.

Writes plane.npz (the paper code's arrays), plane.png, metrics.csv (one row per grid
point) and summary.json (the bends, the segment's and the curve's midpoints, the grid's range).
Stopped by SIGTERM or SIGUSR1 (exit 75 after the current point) or killed, the same command
continues after the last grid point evaluated (points.pt), to the uninterrupted run's figures.
"""
from __future__ import annotations

import runtime  # first: from here on SIGTERM and SIGUSR1 are remembered, not fatal (runtime.signals)

import itertools
import sys

import numpy as np
import torch
from tabulate import tabulate

import cli
import curves
import models
import landscape
from runtime.errors import UserError


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Loss and error over the plane through three points of weight space.")
    cli.add_run_arguments(parser, default_dir="runs/plane")
    cli.add_data_arguments(parser, from_checkpoint=True)
    cli.add_model_argument(parser, required=False)
    group = parser.add_argument_group("Plane")
    group.add_argument("--ckpt", action="append", required=True, metavar="CKPT",
                       help="a 3-bend curve checkpoint, or three model checkpoints (--ckpt three times)")
    group.add_argument("--curve", choices=sorted(curves.CURVES), default=None,
                       help="accepted for the original commands; must match the checkpoint's")
    group.add_argument("--num_bends", type=cli.positive_int, default=None,
                       help="accepted for the original commands; must match the checkpoint's (3)")
    group.add_argument("--grid_points", type=cli.positive_int, default=21, help="G: a G x G grid")
    for side in ("left", "right", "bottom", "top"):
        group.add_argument(f"--margin_{side}", type=float, default=0.2,
                           help=f"{side} margin, a fraction of the axis's extent")
    group.add_argument("--curve_points", type=cli.positive_int, default=61, help="points along the curve")
    group.add_argument("--wd", type=cli.non_negative_float, default=None,
                       help="weight decay of the train loss's L2 term (default: the checkpoint's, else 1e-4)")
    cli.add_train_eval_argument(group)
    return parser


def load_points(args) -> tuple[dict, list[dict]]:
    """The first checkpoint and the three points' plain state dicts: a curve's bends, or three models."""
    paths = args.ckpt = [runtime.resolve_checkpoint_path(p) for p in args.ckpt]
    if len(paths) == 1:
        ckpt = runtime.load_checkpoint(paths[0])
        if ckpt["kind"] != "curve":
            raise UserError(f"{paths[0]} is a {ckpt['kind']!r} checkpoint: give a 3-bend curve checkpoint, "
                            "or --ckpt three model checkpoints")
        if ckpt["num_bends"] != 3:
            raise UserError(f"{paths[0]} is a curve of {ckpt['num_bends']} bends: a plane needs exactly "
                            "three points (a 3-bend curve, or --ckpt three model checkpoints)")
        cli.resolve_from_checkpoint(args, ckpt, paths[0], ("model", "dataset", "transform", "curve", "num_bends"))
        cli.resolve_split(args, False, {paths[0]: ckpt}, evaluation_only=True)
        return ckpt, [landscape.bend_state(ckpt["model_state"], k) for k in range(3)]
    if len(paths) != 3:
        raise UserError(f"--ckpt was given {len(paths)} times: give one 3-bend curve checkpoint "
                        "or three model checkpoints")
    if args.curve is not None or args.num_bends is not None:
        raise UserError("--curve and --num_bends describe a curve checkpoint, not three model checkpoints")
    first = runtime.load_checkpoint(paths[0], kind="model")
    ckpts = [first] + [runtime.load_checkpoint(p, kind="model", model=first["model"],
                                             num_classes=first["num_classes"]) for p in paths[1:]]
    for path, ckpt in zip(paths[1:], ckpts[1:]):
        for key in ("model_kwargs", "dataset", "transform"):
            if ckpt.get(key) != first.get(key):
                raise UserError(f"{path} has {key} {ckpt.get(key)}, but {paths[0]} has {first.get(key)}")
    cli.resolve_from_checkpoint(args, first, paths[0])
    cli.resolve_split(args, False, dict(zip(paths, ckpts)), evaluation_only=True)
    return first, [c["model_state"] for c in ckpts]


def main(argv=None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.curve_points < 2 or args.grid_points < 2:
        raise UserError("--curve_points and --grid_points must be at least 2")
    ckpt, states = load_points(args)
    is_curve = ckpt["kind"] == "curve"
    if args.wd is None:
        args.wd = float((ckpt.get("args") or {}).get("wd", 1e-4))
    opened = cli.open_run(args, "plane", saves=True, networks={args.ckpt[0]: ckpt})
    if opened is None:  # finished: nothing to do
        return
    procs, run, dataset, loaders = opened
    device, amp = procs.device, runtime.autocast_type(args)

    # the plain module; the plane's points are copied into its parameters one at a time
    module = models.build_model(ckpt["model"], ckpt["num_classes"], **ckpt["model_kwargs"])
    try:
        w = [landscape.flatten(state, module).to(device) for state in states]
        plane = landscape.Plane(*w)
    except ValueError as exc:
        raise UserError(f"{' '.join(args.ckpt)}: {exc}") from exc
    # a 3-bend curve lies in its bends' plane, and coefficients summing to 1 make the
    # coordinates of phi(t) = sum_k c_k(t) w_k the same combination of the bends' coordinates
    bend_xy = torch.stack([plane.coordinates(wk) for wk in w]).cpu().double()  # (3, 2)
    coefficient_fn = curves.CURVES[ckpt["curve"]] if is_curve else curves.polychain
    ts = np.linspace(0.0, 1.0, args.curve_points)
    curve_xy = np.stack([(coefficient_fn(float(t), 3).double() @ bend_xy).numpy() for t in ts])
    alphas, betas, grid = plane.grid(args.grid_points, args.margin_left, args.margin_right,
                                     args.margin_bottom, args.margin_top)

    module.to(device)
    if args.channels_last:
        module.to(memory_format=torch.channels_last)
    forward = cli.maybe_compile(module, args.compile)
    rows, _ = run.resume_points()  # a run stopped or killed goes on after its last grid point
    if procs.is_main:
        print(f"weight space: {plane.u.numel()} dimensions; |w2 - w0| = {plane.dx:.4g}, "
          f"distance of w1 from that line = {plane.dy:.4g}; train loss L2 term with wd = {args.wd:g}")

    train_loader = cli.train_eval_loader(args, loaders)
    # each point's passes over augmented images get their own crops (numbered by the point), a rerun the same
    draws = itertools.count(len(rows))

    def measure(weights: torch.Tensor) -> dict:
        landscape.load_flat(module, weights)
        return curves.evaluate_weights(module, forward, train_loader, loaders["test"], l2=landscape.l2(weights, args.wd),
                                       amp=amp, draw=next(draws))[0]

    G = args.grid_points
    cells = list(itertools.product(range(G), range(G)))[len(rows):]
    for i, j in cli.progress(cells, "plane", total=G * G, initial=len(rows)):
        x, y = grid[i, j]
        row = {"i": i, "j": j, "x": float(x), "y": float(y), **measure(plane.point(float(x), float(y)))}
        rows.append(row)
        run.point_done(row)
    keys = ["tr_loss", "tr_nll", "tr_acc", "tr_err", "te_loss", "te_nll", "te_acc", "te_err"]
    result = {"ts": ts, "bend_coordinates": bend_xy.numpy(), "curve_coordinates": curve_xy,
              "alphas": alphas, "betas": betas, "grid": grid,
              **{k: np.array([r[k] for r in rows]).reshape(G, G) for k in keys}}  # [i, j]: alphas[i], betas[j]

    # the points the picture is about, measured exactly (they are rarely on the grid)
    names = ["bend 0", "bend 1", "bend 2"] if is_curve else ["ckpt 1", "ckpt 2", "ckpt 3"]
    points = dict(zip(names, w))
    points["segment t=0.5"] = plane.point(0.5 * plane.dx, 0.0)
    if is_curve:
        points["curve t=0.5"] = coefficient_fn(0.5, 3).to(device) @ torch.stack(w)
    summary_points, table = {}, []
    for name, weights in points.items():
        x, y = plane.coordinates(weights).tolist()
        m = measure(weights)
        table.append([name, x, y, m["tr_loss"], m["tr_err"], m["te_nll"], m["te_err"]])
        summary_points[name] = {"x": x, "y": y, "train_loss": m["tr_loss"], "train_err": m["tr_err"],
                                "test_nll": m["te_nll"], "test_err": m["te_err"]}
    if procs.is_main:
        print(tabulate(table, ["point", "x", "y", "tr_loss", "tr_err", "te_nll", "te_err"], floatfmt="9.4f"))
    if run.path("plane.npz"):
        with runtime.atomic_open(run.path("plane.npz"), "wb") as f:  # never half a file
            np.savez(f, **result)
        title = f"{ckpt['model']} on {args.dataset}: " + (f"{ckpt['curve']} curve" if is_curve else "three networks")
        landscape.plot_plane({**result, "is_curve": is_curve}, run.path("plane.png"), title)
    run.finish({
        "grid_points": G, "dx": plane.dx, "dy": plane.dy, "wd": args.wd, "points": summary_points,
        "grid": {k: {"min": float(result[k].min()), "max": float(result[k].max())}
                 for k in ("tr_loss", "te_nll", "te_err")},
    })


if __name__ == "__main__":
    cli.run(main)
