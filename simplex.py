"""SPRO and ESPRO (Benton et al. 2021): simplexes of low loss grown from trained networks, and their ensemble.

ESPRO on CIFAR-10 from three VGG16s (loss-surface-simplexes' experiments/vgg-cifar10: 4 vertices a
simplex, 10 epochs a vertex at lr 0.01, wd 5e-4, lambda 1e-6, 5 points a step; 20 epochs on CIFAR-100):

    python simplex.py --dir=runs/espro --data_path=data --ckpt=runs/vgg16-1/checkpoint-300.pt \
        --ckpt=runs/vgg16-2/checkpoint-300.pt --ckpt=runs/vgg16-3/checkpoint-300.pt

SPRO from one network on DIGITS in a minute: python simplex.py --dir=runs/spro --ckpt=runs/sgd --num_vertices=3

Each --ckpt is vertex 0 of its own simplex, frozen. Every new vertex starts at the centroid of the
others, which are frozen, and trains alone for --epochs_per_vertex epochs (a new SGD, cosine decay
of --lr per epoch) on the mean loss at --num_samples points drawn uniformly from the simplex (a
backward each) minus lambda * log(V^2 + 1e-4), V the simplex's volume; lambda = --volume_reg /
log(V0^2 + 1e-4), at least 1e-8 * --volume_reg / 1e-6, V0 the volume of a random simplex of as
many vertices initialised as the original's SimplexNet initialises one (curves.reference_volumes_sq).
The ensemble (ESPRO; SPRO for one --ckpt) averages the probabilities of --num_test_samples points
drawn from each simplex, BatchNorm recomputed at every point.

Writes simplex-<k>.pt (each grown simplex, a 'subspace' checkpoint), metrics.csv (an epoch a row,
with the lambda in force and log_v0_sq, the natural log of the reference V0^2 for the simplex grown),
ensemble.png (accuracy against the points drawn per simplex) and summary.json. Started again, a
run continues where it stood: which simplex, which vertex, which epoch of it are in last.pt.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch

import cli
import curves
import ensembles
import runtime
import utils
from runtime.errors import UserError

# The ECE's bins (--ece_bins): loss-surface-simplexes reports no ECE; 15, Guo et al.'s count, as
# eval_ensemble.py's for the Ind and FGE it is compared with.
ECE_BINS = 15
SAME = ("model", "dataset", "transform", "num_classes", "model_kwargs", "use_test", "label_noise", "label_noise_seed")


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="SPRO / ESPRO: grow simplexes of low loss from trained networks.")
    cli.add_run_arguments(parser, default_dir="runs/simplex")
    cli.add_data_arguments(parser, from_checkpoint=True, label_noise=True)
    cli.add_model_argument(parser, required=False)
    group = parser.add_argument_group("Simplexes")
    group.add_argument("--ckpt", action="append", default=None, metavar="CKPT", required=True,
                       help="a trained network (model checkpoint or run folder), vertex 0 of a simplex; "
                            "repeat for ESPRO, a simplex from each")
    group.add_argument("--num_vertices", type=cli.int_at_least(2, "vertices"), default=4,
                       help="vertices of each simplex, the trained network included")
    group.add_argument("--epochs_per_vertex", type=cli.positive_int, default=None,
                       help="epochs each new vertex trains (default: 10; 20 for CIFAR100)")
    group.add_argument("--lr", type=cli.non_negative_float, default=0.01, help="initial learning rate of each vertex")
    group.add_argument("--wd", type=cli.non_negative_float, default=5e-4, help="SGD weight decay of the new vertex")
    group.add_argument("--momentum", type=cli.non_negative_float, default=0.9, help="SGD momentum")
    group.add_argument("--volume_reg", type=cli.non_negative_float, default=1e-6,
                       help="lambda before its normalisation by log(V0^2 + 1e-4) (the original's LMBD, for "
                            "its sum of the points' losses; with our mean, LMBD / --num_samples)")
    group.add_argument("--num_samples", type=cli.positive_int, default=5, help="points of the simplex per training step")
    group.add_argument("--num_test_samples", type=cli.positive_int, default=5,
                       help="points of each simplex in the ensemble")
    group = parser.add_argument_group("Evaluation")
    cli.add_train_eval_argument(group)
    cli.add_ece_argument(group, ECE_BINS, "loss-surface-simplexes reports none")
    return parser


def load_starts(args) -> list[dict]:
    """The trained networks, checked to be alike (every mismatch a UserError, before anything is written)."""
    args.ckpt = [runtime.resolve_checkpoint_path(path) for path in args.ckpt]
    starts = [runtime.load_checkpoint(path, kind="model") for path in args.ckpt]
    for name in SAME:
        values = {str(c.get(name)) for c in starts}
        if len(values) > 1:
            raise UserError(f"the checkpoints differ in {name}: "
                            + ", ".join(f"{p} has {c.get(name)}" for p, c in zip(args.ckpt, starts)))
    cli.resolve_from_checkpoint(args, starts[0], args.ckpt[0])
    cli.resolve_split(args, False, {args.ckpt[0]: starts[0]})  # the simplexes grow on their networks' images
    args.epochs_per_vertex = args.epochs_per_vertex or (20 if args.dataset == "CIFAR100" else 10)
    return starts


def start_simplex(args, start: dict, index: int, dataset, device) -> curves.SubspaceModel:
    """Simplex ``index``: its trained network as vertex 0, frozen; its own stream of points."""
    module = cli.build_model(args.model, dataset, "cpu")
    model = curves.SubspaceModel(module, "simplex", 1, fixed=[0], seed=args.seed * 1000 + index)
    model.load_vertex(0, start["model_state"])
    module.load_state_dict(start["model_state"], strict=False)  # BatchNorm buffers (recomputed where evaluated)
    model.to(device)
    return model.to(memory_format=torch.channels_last) if args.channels_last else model


def volume_weights(args, dataset) -> tuple[list[float], list[float]]:
    """SPRO's lambda for a simplex of k vertices (k = 0 .. n; 0 and 1 unused), and log V0^2 (nan for
    k < 2): V0 the volume of k random networks initialised as loss-surface-simplexes' SimplexNet
    initialises its vertices (the first k of n drawn once, from a fixed seed: every run and every
    resumed one gets the same)."""
    volumes = curves.reference_volumes_sq(lambda: cli.build_model(args.model, dataset, "cpu"), args.num_vertices)
    lambdas = [0.0, 0.0] + [curves.spro_lambda(args.volume_reg, v) for v in volumes[1:]]
    return lambdas, [math.nan, math.nan] + [math.log(v) for v in volumes[1:]]


def evaluate_simplex(args, model, index: int, loaders, amp) -> dict:
    """One grown simplex: its volume, each vertex's accuracy, and the mean probabilities of its first
    m random points for m = 1 .. num_test_samples (the points from a seeded generator of its own)."""
    bn_loader, n = cli.train_eval_loader(args, loaders), model.num_vertices
    corners = torch.eye(n, dtype=torch.float64)
    draws = curves.dirichlet(args.num_test_samples, n, torch.Generator().manual_seed(args.seed * 1000 + index))
    vertex_acc, sample_acc, running, means, first = [], [], 0.0, [], None
    for i, point in enumerate(cli.progress(list(corners) + list(draws), f"simplex {index + 1} points")):
        metrics, probs, _ = curves.point_predictions(model, point, loaders["test"], bn_loader, amp, draw=i)
        if i < n:
            vertex_acc.append(metrics["accuracy"])
            first = probs if i == 0 else first
            continue
        sample_acc.append(metrics["accuracy"])
        running = running + probs
        means.append(torch.from_numpy(running / (i - n + 1)).float())
    with torch.no_grad():
        volume = float(model.volume_sq().sqrt())
    return {"volume": volume, "vertex_acc": vertex_acc, "sample_acc": sample_acc, "means": torch.stack(means),
            "start_probs": torch.from_numpy(first).float()}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    starts = load_starts(args)
    opened = cli.open_run(args, "simplex", networks={args.ckpt[0]: starts[0]})
    if opened is None:  # finished: nothing to do
        return
    procs, run, dataset, loaders = opened
    lambdas, log_v0_sq = volume_weights(args, dataset)
    scaler, amp = runtime.grad_scaler(args, procs.device), runtime.autocast_type(args)
    per_vertex, per_simplex = args.epochs_per_vertex, args.epochs_per_vertex * (args.num_vertices - 1)
    total = per_simplex * len(starts)
    ckpt = run.load()
    done = ckpt["epoch"] if ckpt is not None else 0  # epochs of all simplexes: it says where the growth stands
    results = list(ckpt["results"]) if ckpt is not None else []
    model = optimizer = None
    if ckpt is not None and done < total and (done % per_simplex or ckpt.get("step")):  # within a simplex
        model = start_simplex(args, starts[done // per_simplex], done // per_simplex, dataset, procs.device)
        while model.num_vertices < ckpt["num_vertices"]:  # its vertices so far, then their weights
            model.add_vertex()
        model.load_state_dict(ckpt["model_state"])
    if ckpt is not None:
        run.restore_random_state(ckpt)
    run.open_records(resume_epoch=done if ckpt else None)

    def payload() -> dict:
        # where the growth goes on (the epoch after `done`), for a reader: `epoch` alone determines it
        growth = {"simplex": done // per_simplex, "vertex": 1 + done % per_simplex // per_vertex,
                  "vertex_epoch": done % per_vertex, "grown": len(results)}
        return curves.subspace_checkpoint(
            model, args.model, num_classes=dataset.num_classes, model_kwargs=cli.model_kwargs(dataset),
            dataset=args.dataset, transform=args.transform, optimizer=optimizer, args=vars(args),
            scaler_state=scaler.state_dict() if scaler is not None else None, results=results, growth=growth)

    run.set_payload(payload)
    table = cli.Table(["simplex", "vertex", "ep", "lr", "tr_loss", "tr_nll", "tr_acc", "te_acc@c", "volume", "time"])
    forward, resumed = None, model is not None
    for epoch in range(done, total):
        index, vertex_epoch = epoch // per_simplex, epoch % per_vertex
        vertex = 1 + epoch % per_simplex // per_vertex  # the vertex that trains: the model has vertex + 1
        if epoch % per_simplex == 0 and not resumed:  # a new simplex, from its trained network
            model = start_simplex(args, starts[index], index, dataset, procs.device)
        if vertex_epoch == 0 or forward is None:
            if model.num_vertices == vertex:  # a new vertex at the centroid (a resumed one may have it)
                model.add_vertex()
            # a new optimizer for each vertex, as the original: its momentum starts from zero
            optimizer = utils.sgd(model.parameters(), args.lr, args.momentum, args.wd)
            if resumed and (vertex_epoch or ckpt.get("step")):  # the checkpoint's optimizer is this vertex's
                optimizer.load_state_dict(ckpt["optimizer_state"])
                if scaler is not None and ckpt.get("scaler_state"):
                    scaler.load_state_dict(ckpt["scaler_state"])
            regularizer = model.regularizer(lam=lambdas[model.num_vertices]) if args.volume_reg else None
            forward = cli.maybe_compile(procs.wrap(model, broadcast_buffers=False), args.compile)
        started = time.time()
        lr = utils.cosine_learning_rate(args.lr, vertex_epoch, per_vertex)  # CosineAnnealingLR, stepped per epoch
        train = cli.train_epoch(run, forward, loaders["train"], optimizer, epoch, resume=ckpt, lr=lr,
                                regularizer=regularizer, amp=amp, scaler=scaler, samples=args.num_samples)
        test = curves.evaluate_at(model, curves.centroid(model.num_vertices), loaders["test"],
                                  cli.train_eval_loader(args, loaders), amp, draw=epoch, ece_bins=args.ece_bins)
        with torch.no_grad():
            volume = float(model.volume_sq().sqrt())
        if vertex == args.num_vertices - 1 and vertex_epoch == per_vertex - 1:  # the simplex is grown
            results.append(evaluate_simplex(args, model, index, loaders, amp))
            path = run.path(f"simplex-{index}.pt", prefixed=False)
            if path:
                runtime.save_checkpoint(path, curves.subspace_checkpoint(
                    model, args.model, num_classes=dataset.num_classes, model_kwargs=cli.model_kwargs(dataset),
                    dataset=args.dataset, transform=args.transform, args=vars(args), epoch=epoch + 1))
        done, resumed = epoch + 1, False
        row = {"epoch": done, "simplex": index, "vertex": vertex, "vertex_epoch": vertex_epoch + 1, "lr": lr,
               "train_loss": train["loss"], "train_nll": train["nll"], "train_acc": train["accuracy"],
               "centroid_test_nll": test["nll"], "centroid_test_acc": test["accuracy"], "volume": volume,
               "lambda": lambdas[vertex + 1] if args.volume_reg else 0.0, "log_v0_sq": log_v0_sq[vertex + 1],
               "time": time.time() - started}
        table.print({"simplex": index, "vertex": vertex, "ep": vertex_epoch + 1, "lr": lr, "tr_loss": train["loss"],
                     "tr_nll": train["nll"], "tr_acc": train["accuracy"], "te_acc@c": test["accuracy"],
                     "volume": volume, "time": row["time"]})
        run.log(row)
        run.end_epoch(done, keep=False)

    labels = loaders["test"].labels.cpu().numpy()
    curve = [utils.prediction_metrics(torch.stack([r["means"][m] for r in results]).mean(0).double().numpy(), labels,
                                      args.ece_bins) for m in range(args.num_test_samples)]
    ind = utils.prediction_metrics(torch.stack([r["start_probs"] for r in results]).mean(0).double().numpy(), labels,
                                   args.ece_bins)
    # ESPRO of the first k simplexes, k = 1 .. all (the first alone is SPRO)
    by_simplexes = [utils.prediction_metrics(torch.stack([r["means"][-1] for r in results[:k]]).mean(0).double().numpy(),
                                             labels)["accuracy"] for k in range(1, len(results) + 1)]
    plot = run.path("ensemble.png")
    if plot:
        ensembles.plot_ensemble_accuracy(
            plot, [float(np.mean([r["sample_acc"][m] for r in results])) for m in range(args.num_test_samples)],
            [c["accuracy"] for c in curve], title=f"{'ESPRO' if len(results) > 1 else 'SPRO'}: {len(results)} simplex(es) "
            f"of {args.num_vertices} {args.model}s on {args.dataset}", xlabel="points drawn from each simplex")
        print(f"ensemble of {args.num_test_samples} points from each of {len(results)} simplex(es): accuracy "
              f"{curve[-1]['accuracy']:.2f}%, NLL {curve[-1]['nll']:.4f}; the trained networks alone: "
              f"{ind['accuracy']:.2f}%, NLL {ind['nll']:.4f}", flush=True)
    run.finish({"num_simplexes": len(results), "num_vertices": args.num_vertices,
                "num_test_samples": args.num_test_samples, "ensemble_acc": curve[-1]["accuracy"],
                "ensemble_nll": curve[-1]["nll"], "ensemble_ece": curve[-1]["ece"],
                "ensemble_acc_by_samples": [c["accuracy"] for c in curve], "ensemble_acc_by_simplexes": by_simplexes,
                "volume": [r["volume"] for r in results], "vertex_acc": [r["vertex_acc"] for r in results],
                "start_ensemble_acc": ind["accuracy"], "start_ensemble_nll": ind["nll"], "start_ensemble_ece": ind["ece"]})


if __name__ == "__main__":
    cli.run(main)
