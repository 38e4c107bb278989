"""Train loss and test error along random rays from trained networks: how wide their minima are
(Izmailov et al. 2018, SWA, Figure 5: SGD's and SWA's solutions, 10 random directions).

From each --ckpt w, along each of --num_directions directions d uniform on the unit sphere of all
weights (the same directions for every checkpoint), at --num_points distances r from 0 to
--max_distance: the network w + r d, its BatchNorm statistics recomputed, then its train loss
(NLL + 0.5 * wd * ||w + r d||^2) and error on its training images (--train_eval, as eval_curve.py),
and its test NLL and error. The paper's setting, PreResNet-164 on CIFAR-100 (swa.py's runs; the
distance scale is the network's: its weights' norm is printed first):

    python rays.py --dir=runs/rays-c100 --data_path=data --ckpt=runs/sgd-c100/checkpoint-300.pt \
        --ckpt=runs/swa-c100/swa.pt --num_directions=10 --max_distance=60

On DIGITS in a few minutes of a CPU, ConvFC's SGD and SWA solutions (|w| about 35):

    python train.py --dir=runs/sgd --dataset=DIGITS --model=ConvFC --epochs=20 --lr=0.05 --use_test
    python swa.py --dir=runs/swa --dataset=DIGITS --model=ConvFC --epochs=20 --lr_init=0.05 --swa \
        --swa_start=10 --swa_lr=0.02 --use_test
    python rays.py --dir=runs/rays --ckpt=runs/sgd/checkpoint-20.pt --ckpt=runs/swa/swa.pt \
        --num_directions=5 --max_distance=60 --num_points=13

The width of a minimum: the distance at which the train loss, averaged over the directions at each
distance, first reaches its value at distance 0 plus --rise (see --help). Writes metrics.csv (a row
per checkpoint, direction and distance), rays.npz (arrays checkpoint x direction x distance),
rays.png (each checkpoint's mean and min-max band, train loss and test error side by side) and
summary.json (``width``: one per checkpoint, null where the loss never rises enough within
--max_distance; ``nll_width``, the same of the train NLL; per checkpoint its figures at distance 0
and each direction's width). A run stopped
(SIGTERM, SIGUSR1: exit status 75) or killed continues from its last row when started again.
"""
from __future__ import annotations

import runtime  # first: from here on SIGTERM and SIGUSR1 are remembered, not fatal (runtime.signals)

import argparse
import math
import sys

import numpy as np
import torch

import cli
import curves
import models
from landscape import directions
from landscape import rays as lr
from runtime.errors import UserError

# what every checkpoint must share with the first: the same network, data and labels
SAME = ("model", "num_classes", "model_kwargs", "dataset", "transform", "label_noise")


def positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Train loss and test error along random rays from checkpoints: "
                                            "the widths of their minima (SWA paper, Figure 5).")
    cli.add_run_arguments(parser, default_dir="runs/rays")
    cli.add_data_arguments(parser, from_checkpoint=True, label_noise=True)
    group = parser.add_argument_group("Rays")
    group.add_argument("--ckpt", action="extend", nargs="+", required=True, metavar="CKPT",
                       help="model checkpoints (or run folders: their latest) of one architecture, dataset and "
                            "split; repeat the flag or list several")
    group.add_argument("--num_directions", type=cli.positive_int, default=10,
                       help="random directions, uniform on the unit sphere of all weights, the same for every "
                            "checkpoint, drawn from --seed (default: 10, the paper's)")
    group.add_argument("--max_distance", type=positive_float, required=True, metavar="D",
                       help="length of the rays in weight space (Euclidean: the directions are unit vectors); "
                            "the scale is the network's: its weights' norm is printed first")
    group.add_argument("--num_points", type=cli.int_at_least(2, "points"), default=21,
                       help="distances from 0 to D along each ray, evenly spaced, both included")
    group.add_argument("--rise", type=positive_float, default=0.1,
                       help="the width of a minimum is the distance at which the train loss, averaged over the "
                            "directions, first reaches its value at distance 0 plus RISE (linear between "
                            "points; null where it stays below within D); also given per direction. The L2 "
                            "term alone rises by about 0.5 * wd * r^2, which caps the width near "
                            "sqrt(2 * RISE / wd) (45 for wd 1e-4): summary.json's nll_width is the train NLL's")
    group.add_argument("--wd", type=cli.non_negative_float, default=None,
                       help="weight decay of the train loss's L2 term (default: the checkpoints' training "
                            "runs', which must agree, else 1e-4)")
    cli.add_train_eval_argument(group)
    return parser


def _shared(ckpt: dict, name: str):
    """The setting ``name`` of a checkpoint, for comparison: no label noise is 0, however recorded."""
    if name == "label_noise":
        noise = ckpt.get("label_noise") or 0.0
        return (noise, ckpt.get("label_noise_seed") or 0) if noise else 0.0
    return ckpt.get(name)


def load(args) -> list[dict]:
    """The checkpoints, checked to be alike, and the flags they settle; every mistake a UserError
    before anything is written."""
    args.ckpt = [runtime.resolve_checkpoint_path(path) for path in args.ckpt]
    ckpts = [runtime.load_checkpoint(path, kind="model") for path in args.ckpt]
    for name in SAME:
        if len({str(_shared(c, name)) for c in ckpts}) > 1:
            raise UserError(f"the checkpoints differ in {name}: "
                            + ", ".join(f"{p} has {_shared(c, name)}" for p, c in zip(args.ckpt, ckpts)))
    cli.resolve_from_checkpoint(args, ckpts[0], args.ckpt[0])  # dataset, transform, label noise
    cli.resolve_split(args, False, dict(zip(args.ckpt, ckpts)))  # the training images they trained on
    trained = {p: (c.get("args") or {}).get("wd") for p, c in zip(args.ckpt, ckpts)}
    trained = {p: wd for p, wd in trained.items() if wd is not None}
    if args.wd is None:
        if len(set(trained.values())) > 1:
            raise UserError("the checkpoints were trained with different --wd ("
                            + ", ".join(f"{p} {wd:g}" for p, wd in trained.items())
                            + "): give --wd for the train loss's L2 term")
        args.wd = float(next(iter(trained.values()), 1e-4))
    return ckpts


def weights_norm(ckpt: dict, names: list[str]) -> float:
    """||w|| over the parameters (not the BatchNorm statistics), in float64."""
    return math.sqrt(sum(float(ckpt["model_state"][n].double().pow(2).sum()) for n in names))


def main(argv=None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    ckpts = load(args)
    opened = cli.open_run(args, "rays", saves=True, networks=dict(zip(args.ckpt, ckpts)))
    if opened is None:  # finished: nothing to do
        return
    procs, run, dataset, loaders = opened
    device, amp = procs.device, runtime.autocast_type(args)
    distances = directions.ray_distances(args.max_distance, args.num_points)
    plan = lr.Plan(len(ckpts), args.num_directions, tuple(distances.tolist()))
    # the rows of a run stopped (SIGTERM, SIGUSR1: after the current point) or killed: it goes on after them
    rows = plan.completed(run.resume_points()[0])

    names = [n for n, _ in models.model_from_checkpoint(ckpts[0], "cpu").named_parameters()]
    norms = [weights_norm(c, names) for c in ckpts]
    if procs.is_main:
        print(f"{ckpts[0]['model']} on {args.dataset}: {sum(ckpts[0]['model_state'][n].numel() for n in names)} "
              f"parameters; {plan.num_checkpoints} checkpoint(s) x {plan.num_directions} directions x "
              f"{plan.num_distances} distances from 0 to {args.max_distance:g}: {plan.num_evaluations} points "
              f"evaluated; train loss with L2 term wd = {args.wd:g}")
        for path, norm in zip(args.ckpt, norms):
            print(f"  {path}: |w| = {norm:.4g}")
        if rows:
            print(f"continuing after the {len(rows)} of {plan.num_rows} rows in {run.file('metrics.csv')}")

    train_loader = cli.train_eval_loader(args, loaders)
    network = {}  # the checkpoint being measured: index, model, forward, weights
    direction = {}  # the direction in use: index, tensors

    def at(c: int):
        if network.get("c") != c:
            model = models.model_from_checkpoint(ckpts[c], device)
            if args.channels_last:
                model.to(memory_format=torch.channels_last)
            network.update(c=c, model=model, forward=cli.maybe_compile(model, args.compile),
                           base=directions.weights(model))
        return network["model"], network["forward"], network["base"]

    def evaluate(c: int, j: int, k: int) -> dict:
        """The point w_c + r_k d_j: BatchNorm recomputed, its figures (curves' shared point evaluation)."""
        model, forward, base = at(c)
        if k == 0:
            state = base
        else:
            if direction.get("j") != j:
                direction.update(j=j, d=lr.ray_direction(model, args.seed, j))
            state = directions.combine(base, (distances[k], direction["d"]))
        directions.load_weights(model, state)
        draw = plan.draw(c, j, k)
        torch.manual_seed(lr.point_seed(args.seed, draw))  # any dropout in the BatchNorm pass: the point's own
        return curves.evaluate_weights(model, forward, train_loader, loaders["test"], amp=amp, draw=draw,
                                       l2=0.5 * args.wd * directions.norm(state) ** 2)[0]

    table = cli.Table(["checkpoint", "direction", "tr_loss_0", "tr_loss_D", "te_err_D", "width"], floatfmt=".4f")
    for index in cli.progress(range(len(rows), plan.num_rows), "points"):
        c, j, k = plan.where(index)
        if k == 0 and j > 0:  # distance 0 is the checkpoint itself, evaluated once
            figures = {key: rows[plan.row(c, 0, 0)][key] for key in lr.FIGURES}
        else:
            figures = evaluate(c, j, k)
        row = {**plan.label(index), **figures}
        rows.append(row)
        if k == plan.num_distances - 1:
            losses = [rows[plan.row(c, j, i)]["tr_loss"] for i in range(plan.num_distances)]
            table.print({"checkpoint": c, "direction": j, "tr_loss_0": losses[0], "tr_loss_D": losses[-1],
                         "te_err_D": row["te_err"], "width": directions.width(distances, losses, args.rise)})
        run.point_done(row)

    result = lr.summarise(plan, rows, args.rise)
    finite = lambda w: float(w) if math.isfinite(w) else None  # noqa: E731  (JSON null: not measured)
    checkpoints = []
    for path, norm, figures in zip(args.ckpt, norms, result["checkpoints"]):
        checkpoints.append({"path": path, "norm": norm, **figures, "width": finite(figures["width"]),
                            "direction_widths": [finite(w) for w in figures["direction_widths"]],
                            "nll_width": finite(figures["nll_width"])})
        if procs.is_main:
            width, nll = (f"{w:.4g}" if math.isfinite(w) else f"more than {args.max_distance:g}"
                          for w in (figures["width"], figures["nll_width"]))
            print(f"{path}: at distance 0 train loss {figures['train_loss']:.4f}, test error "
                  f"{figures['test_err']:.2f}%; width {width} (where the mean train loss reaches "
                  f"{figures['train_loss'] + args.rise:.4f}), the train NLL's {nll}")
    if run.path("rays.npz"):
        with runtime.atomic_open(run.path("rays.npz"), "wb") as f:
            np.savez(f, distances=distances, **result["arrays"], width=result["width"],
                     direction_widths=result["direction_widths"], nll_width=result["nll_width"],
                     checkpoints=np.array(args.ckpt))
        lr.plot_rays(run.path("rays.png"), distances, result["arrays"], [lr.short_name(p) for p in args.ckpt],
                     result["width"], args.rise,
                     f"{ckpts[0]['model']} on {args.dataset}: {plan.num_directions} random directions")
    run.finish({"width": [c["width"] for c in checkpoints], "nll_width": [c["nll_width"] for c in checkpoints],
                "rise": args.rise, "wd": args.wd, "num_directions": plan.num_directions,
                "max_distance": args.max_distance, "num_points": plan.num_distances, "directions": "shared",
                "checkpoints": checkpoints})


if __name__ == "__main__":
    cli.run(main)
