"""Train loss and test error around one checkpoint along filter-normalised random directions (Li et al. 2018).

One direction (--x only) or two (--x and --y), drawn as Li et al.'s code draws them
(tomgoldstein/loss-landscape, net_plotter.py): Gaussian, each filter rescaled to the norm of
the network's own filter, and biases and BatchNorm parameters left where they are
(--xignore biasbn, as every command of its README; --xignore= gives them the weights as their
direction instead, its rule without the flag). Its README's 1D and 2D commands, ours:

    python surface.py --dir=runs/vgg9-1d --ckpt=runs/vgg9/checkpoint-300.pt --data_path=data \
        --x=-1:1:51 --dir_type weights --xnorm filter --xignore biasbn
    python surface.py --dir=runs/resnet56-2d --ckpt=runs/resnet56/checkpoint-300.pt --data_path=data \
        --x=-1:1:51 --y=-1:1:51 --dir_type weights --xnorm filter --xignore biasbn \
        --ynorm filter --yignore biasbn

Around the DIGITS demo's first ConvFC (`make demo`), a 9 x 9 plane:

    python surface.py --dir=runs/demo/surface --ckpt=runs/demo/endpoint-1/checkpoint-20.pt --x=-1:1:9 --y=-1:1:9

At each point w + x d (+ y e): BatchNorm statistics recomputed for its weights, then the train
loss (NLL + 0.5 * wd * ||w||^2, as on a curve and a plane) and error, and the test NLL and
error, as plane.py measures its points (--train_eval as there). Writes surface.npz (the
coordinates and one array per figure), surface.png (the 1D curves, or plane.py's contours),
metrics.csv (one row per point) and summary.json (the checkpoint's own figures, the grid's range).
"""
from __future__ import annotations

import runtime  # first: from here on SIGTERM and SIGUSR1 are remembered, not fatal (runtime.signals)

import itertools
import sys

import numpy as np
import torch

import cli
import curves
import models
from landscape import planes
from landscape import directions

KEYS = ["tr_loss", "tr_nll", "tr_acc", "tr_err", "te_loss", "te_nll", "te_acc", "te_err"]
IGNORE = {"biasbn": "zero", "": "weights"}  # loss-landscape's --xignore -> directions' bias_bn rule


def axis(text: str) -> tuple[float, float, int]:
    """loss-landscape's ``min:max:num`` (``--x=-1:1:51``)."""
    import argparse

    try:
        low, high, num = text.split(":")
        low, high, num = float(low), float(high), int(num)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not min:max:num (such as -1:1:51)") from None
    if num < 2 or not high > low:
        raise argparse.ArgumentTypeError(f"{text!r}: needs max > min and at least 2 points")
    return low, high, num


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Loss and error along filter-normalised random directions around a checkpoint.")
    cli.add_run_arguments(parser, default_dir="runs/surface")
    cli.add_data_arguments(parser, from_checkpoint=True)
    group = parser.add_argument_group("Directions")
    group.add_argument("--ckpt", required=True, metavar="CKPT", help="a model checkpoint (or a run folder: its latest)")
    group.add_argument("--x", type=axis, default=axis("-1:1:51"), metavar="MIN:MAX:NUM",
                       help="coefficients along the first direction (default: -1:1:51, the original's)")
    group.add_argument("--y", type=axis, default=None, metavar="MIN:MAX:NUM",
                       help="coefficients along a second direction: a 2D surface (default: 1D)")
    for a in "xy":
        group.add_argument(f"--{a}norm", choices=("filter",), default="filter",
                           help="direction normalisation (only Li et al.'s filter normalisation)")
        group.add_argument(f"--{a}ignore", choices=tuple(IGNORE), default="biasbn",
                           help="biasbn: biases and BatchNorm parameters do not move; '' (empty): their "
                                "direction is their weights (loss-landscape's rule without the flag)")
    group.add_argument("--dir_type", choices=("weights",), default="weights",
                       help="directions over the parameters (BatchNorm statistics are recomputed, not moved)")
    group.add_argument("--wd", type=cli.non_negative_float, default=None,
                       help="weight decay of the train loss's L2 term (default: the checkpoint's, else 1e-4)")
    cli.add_train_eval_argument(group)
    return parser


def plot(result: dict, path: str, title: str) -> None:
    """1D: train loss and test error against the coefficient; 2D: plane.py's filled contours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys = result["xcoordinates"], result.get("ycoordinates")
    panels = [("tr_loss", "train loss (NLL + L2)"), ("te_err", "test error (%)")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    for ax, (key, label) in zip(axes, panels):
        values = result[key]
        if ys is None:
            ax.plot(xs, values, "-o", ms=3, color="C0" if key == "tr_loss" else "C3")
            ax.axvline(0.0, color="k", lw=0.8, ls="--", label="checkpoint")
            ax.set_xlabel("x: along the filter-normalised direction d")
            ax.set_ylabel(label)
        else:
            levels = planes.contour_levels(values)
            norm = matplotlib.colors.BoundaryNorm(levels, plt.get_cmap(planes.CMAP).N)
            gx, gy = np.meshgrid(xs, ys, indexing="ij")
            filled = ax.contourf(gx, gy, values, levels=levels, cmap=planes.CMAP, norm=norm)
            ax.contour(gx, gy, values, levels=levels, colors="k", linewidths=0.4, alpha=0.5)
            fig.colorbar(filled, ax=ax, format="%.3g", shrink=0.9).set_label(label)
            ax.plot(0.0, 0.0, "o", ms=9, color="white", mec="k", label="checkpoint")
            ax.set_aspect("equal")
            ax.set_xlabel("x: along d")
            ax.set_ylabel("y: along e")
        ax.set_title(label)
    axes[0].legend(loc="upper right", fontsize=8, framealpha=0.8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    args.ckpt = runtime.resolve_checkpoint_path(args.ckpt)
    ckpt = runtime.load_checkpoint(args.ckpt, kind="model")
    cli.resolve_from_checkpoint(args, ckpt, args.ckpt, ("dataset", "transform"))
    cli.resolve_split(args, False, {args.ckpt: ckpt}, evaluation_only=True)
    if args.wd is None:
        args.wd = float((ckpt.get("args") or {}).get("wd", 1e-4))
    opened = cli.open_run(args, "surface", saves=False, networks={args.ckpt: ckpt})
    if opened is None:  # finished: nothing to do
        return
    procs, run, dataset, loaders = opened
    device, amp = procs.device, runtime.autocast_type(args)
    model = models.model_from_checkpoint(ckpt, device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    forward = cli.maybe_compile(model, args.compile)

    # one generator, the x direction drawn first: --seed fixes both
    g = torch.Generator().manual_seed(args.seed)
    base = directions.weights(model)
    d = directions.filter_normalized_direction(model, g, bias_bn=IGNORE[args.xignore])
    e = directions.filter_normalized_direction(model, g, bias_bn=IGNORE[args.yignore]) if args.y else None
    xs = np.linspace(*args.x)
    ys = np.linspace(*args.y) if args.y else None
    run.open_records()
    if procs.is_main:
        print(f"{ckpt['model']}: {sum(t.numel() for t in base.values())} parameters, |w| = {directions.norm(base):.4g}, "
              f"|d| = {directions.norm(d):.4g}" + (f", |e| = {directions.norm(e):.4g}" if e else "")
              + f"; train loss L2 term with wd = {args.wd:g}")

    train_loader = cli.train_eval_loader(args, loaders)
    draws = itertools.count()  # each point's passes over augmented images get their own crops, a rerun the same

    def evaluate(state: dict) -> dict:  # the point evaluation of curves and planes (BatchNorm recomputed)
        directions.load_weights(model, state)
        return curves.evaluate_weights(model, forward, train_loader, loaders["test"], amp=amp, draw=next(draws),
                                       l2=0.5 * args.wd * directions.norm(state) ** 2)[0]

    def progress(cells):
        return cli.progress(cells, "surface")

    if e is None:
        rows = directions.measure_line(evaluate, base, d, xs, key="x", progress=progress)
    else:
        rows = directions.measure_plane(evaluate, base, d, e, xs, ys, progress=progress)
    for row in rows:
        run.log(row)
    shape = (len(xs),) if e is None else (len(xs), len(ys))  # [i, j]: xs[i], ys[j]
    result = {"xcoordinates": xs, **({"ycoordinates": ys} if e is not None else {}),
              **{k: np.array([r[k] for r in rows]).reshape(shape) for k in KEYS}}
    center = evaluate(base)  # the checkpoint itself, BatchNorm recomputed as at every point
    if procs.is_main:
        print(f"checkpoint: train loss {center['tr_loss']:.4f}, train error {center['tr_err']:.2f}%, "
              f"test NLL {center['te_nll']:.4f}, test error {center['te_err']:.2f}%")
    if run.path("surface.npz"):
        with runtime.atomic_open(run.path("surface.npz"), "wb") as f:
            np.savez(f, **result)
        plot(result, run.path("surface.png"), f"{ckpt['model']} on {args.dataset}: filter-normalised "
             + ("direction" if e is None else "plane") + f" around {args.ckpt}")
    run.finish({
        "dimensions": 1 if e is None else 2, "points": len(rows), "wd": args.wd,
        "checkpoint": {"train_loss": center["tr_loss"], "train_err": center["tr_err"],
                       "test_nll": center["te_nll"], "test_err": center["te_err"]},
        "grid": {k: {"min": float(result[k].min()), "max": float(result[k].max())}
                 for k in ("tr_loss", "te_nll", "te_err")},
    })


if __name__ == "__main__":
    cli.run(main)
