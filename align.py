"""Permute the hidden units of network B to match network A (Git Re-Basin), for any model of the zoo.

Two VGG16s trained with different seeds, then the straight segment between A and aligned B:

    python align.py --dir=runs/vgg16-align --ckpt_a=runs/vgg16-seed1/checkpoint-200.pt \
        --ckpt_b=runs/vgg16-seed2/checkpoint-200.pt --method=weights
    python eval_curve.py --dir=runs/vgg16-segment-aligned --data_path=data --use_test \
        --init_start=runs/vgg16-seed1/checkpoint-200.pt --init_end=runs/vgg16-align/aligned.pt

The permutation groups come from the model's graph (alignment.groups), not from a spec.
--method weights: Git Re-Basin's weight matching (coordinate descent over the groups in a
random order set by --seed, a linear assignment each, until a sweep gains nothing).
--method activations: one assignment per group on the correlations of the two networks'
activations on the training images (the first --num_images of them, plain, in order).
Writes aligned.pt (B permuted: an ordinary 'model' checkpoint with B's settings, for every
script), summary.json (the L2 distances to A before and after, each group's permutation),
metrics.csv (one row per group), command.sh and args.json in --dir.
"""
from __future__ import annotations

import sys
import time

import torch

import alignment
import cli
import models
import runtime
import utils
from runtime.errors import UserError

METHODS = ("weights", "activations")
# what B's checkpoint carries over to aligned.pt: its description; its training state (optimizer
# momentum, SWA average, ...) belongs to the unpermuted weights and is left out
KEPT = ("model", "model_kwargs", "num_classes", "dataset", "transform", "epoch", "use_test", "label_noise",
        "label_noise_seed", "args", "rng_state")


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Permute network B's hidden units to match network A (Git Re-Basin).")
    cli.add_run_arguments(parser, default_dir="runs/align")
    cli.add_data_arguments(parser, from_checkpoint=True)
    group = parser.add_argument_group("Alignment")
    group.add_argument("--ckpt_a", required=True, metavar="CKPT", help="network A, the reference (a model checkpoint)")
    group.add_argument("--ckpt_b", required=True, metavar="CKPT", help="network B, the one permuted")
    group.add_argument("--method", choices=METHODS, default="weights",
                       help="weights: weight matching; activations: activation matching on training images")
    group.add_argument("--max_iter", type=cli.positive_int, default=alignment.matching.MAX_ITER,
                       help="--method weights: most sweeps over the groups (Git Re-Basin's max_iter)")
    group.add_argument("--num_images", type=cli.positive_int, default=None,
                       help="--method activations: training images to compare on (default: all, as Git Re-Basin)")
    group.add_argument("--similarity", choices=alignment.matching.SIMILARITIES, default="correlation",
                       help="--method activations: Pearson correlation (Git Re-Basin's VGG and REPAIR) or the "
                            "inner product E[ab] (Git Re-Basin's MLP scripts)")
    return parser


def load_checkpoints(args) -> tuple[dict, dict]:
    """A and B, checked to be 'model' checkpoints of one architecture, before anything is written."""
    args.ckpt_a, args.ckpt_b = (runtime.resolve_checkpoint_path(p) for p in (args.ckpt_a, args.ckpt_b))
    a, b = (runtime.load_checkpoint(p, kind="model") for p in (args.ckpt_a, args.ckpt_b))
    for key in ("model", "num_classes", "model_kwargs", "dataset"):
        if a[key] != b[key]:
            raise UserError(f"{args.ckpt_b} has {key} {b[key]}, but {args.ckpt_a} has {a[key]}: "
                            "alignment needs two networks of one architecture")
    cli.resolve_from_checkpoint(args, a, args.ckpt_a, names=("dataset",))
    args.model = a["model"]
    if args.transform is None:
        args.transform = a["transform"]
    # the images compared on are training images: both networks must have trained on the same ones
    cli.resolve_split(args, False, {args.ckpt_a: a, args.ckpt_b: b}, evaluation_only=args.method == "weights")
    return a, b


def distance(state_a: dict, state_b: dict, names) -> float:
    """The L2 distance of two networks over their parameters."""
    return float(sum(((state_a[n].double() - state_b[n].double()) ** 2).sum() for n in names) ** 0.5)


def first_images(loader, count: int):
    """The loader's batches, cut after ``count`` images."""
    seen = 0
    for x, y in loader:
        if seen + len(x) > count:
            x, y = x[:count - seen], y[:count - seen]
        yield x, y
        seen += len(x)
        if seen >= count:
            return


def main(argv=None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    ckpt_a, ckpt_b = load_checkpoints(args)
    opened = cli.open_run(args, "align", load=args.method == "activations",
                          networks={args.ckpt_a: ckpt_a, args.ckpt_b: ckpt_b})
    if opened is None:  # finished: nothing to do
        return
    procs, run, _, loaders = opened
    device = procs.device
    model_a, model_b = models.model_from_checkpoint(ckpt_a, device), models.model_from_checkpoint(ckpt_b, device)
    kwargs = ckpt_a["model_kwargs"]
    example = torch.zeros(1, kwargs.get("in_channels", 3), kwargs.get("image_size", 32), kwargs.get("image_size", 32),
                          device=device)
    try:
        symmetries = alignment.analyse(model_a, example)
    except ValueError as exc:
        raise UserError(f"cannot align {args.model}: {exc}") from exc
    groups = symmetries.groups
    run.open_records()

    started = time.time()
    params_a, params_b = alignment.parameters(model_a), alignment.parameters(model_b)
    figures = {"method": args.method, "model": args.model, "ckpt_a": args.ckpt_a, "ckpt_b": args.ckpt_b}
    if args.method == "weights":
        result = alignment.weight_matching(groups, params_a, params_b, seed=args.seed, max_iter=args.max_iter)
        perms = result.perms
        figures.update(sweeps=result.sweeps, converged=result.converged)
        if procs.is_main:
            print(f"weight matching: {result.sweeps} sweeps over {len(groups)} groups"
                  + ("" if result.converged else f" (stopped at --max_iter={args.max_iter})"))
    else:
        train = loaders["train_eval"]
        count = min(args.num_images or train.num_images, train.num_images)
        graph_b = torch.fx.symbolic_trace(model_b)
        perms = alignment.activation_matching(groups, symmetries.graph, graph_b, first_images(train, count),
                                              args.similarity,
                                              autocast=lambda: utils.autocast(device, runtime.autocast_type(args)))
        figures.update(num_images=count, similarity=args.similarity)
        if procs.is_main:
            print(f"activation matching: {len(groups)} groups on {figures['num_images']} training images")

    state_b = ckpt_b["model_state"]
    aligned = alignment.permute_state(state_b, groups, {k: v.cpu() for k, v in perms.items()})
    names = list(params_a)
    before, after = distance(ckpt_a["model_state"], state_b, names), distance(ckpt_a["model_state"], aligned, names)
    table = cli.Table(["group", "size", "moved", "layers"])
    for g in groups:
        moved = int((perms[g.name].cpu() != torch.arange(g.size)).sum())
        row = {"group": g.name, "size": g.size, "moved": moved, "layers": " ".join(g.layers)}
        table.print({**row, "layers": ", ".join(g.layers[:3]) + (", ..." if len(g.layers) > 3 else "")})
        run.log(row)
    if procs.is_main:
        print(f"L2 distance to A: {before:.4f} before, {after:.4f} after ({time.time() - started:.1f} s)")
    path = run.path("aligned.pt", prefixed=False)
    if path:
        checkpoint = {key: ckpt_b[key] for key in KEPT if key in ckpt_b}
        checkpoint.update(kind="model", model_state=aligned, optimizer_state=None,
                          aligned_to=args.ckpt_a, aligned_from=args.ckpt_b, alignment=args.method)
        runtime.save_checkpoint(path, checkpoint)
    figures.update(distance_before=before, distance_after=after, seconds=time.time() - started,
                   groups={g.name: {"size": g.size, "layers": list(g.layers),
                                    "permutation": perms[g.name].tolist()} for g in groups})
    run.finish(figures)


if __name__ == "__main__":
    cli.run(main)
