"""Learn a line, curve or simplex of networks from scratch (Wortsman et al. 2021, learning-subspaces).

A line of cResNet20s on CIFAR-10 (learning-subspaces' experiment_configs/cifar10/one_dimensional_subspaces/
train_lines.py: 160 epochs, lr 0.1 with 5 warm-up epochs and cosine decay, wd 1e-4, beta 1):

    python train_subspace.py --dir=runs/line --dataset=CIFAR10 --data_path=data --model=cResNet20 \
        --shape=line --epochs=160 --lr=0.1 --wd=1e-4 --beta=1

On DIGITS in a minute on a CPU (a simplex: --shape=simplex --num_vertices=3):

    python train_subspace.py --dir=runs/line --dataset=DIGITS --model=ConvFC --shape=line \
        --epochs=20 --lr=0.05 --warmup_epochs=2

Every vertex starts from its own random initialisation. Each step trains one random point:
alpha ~ U(0, 1) on a line or curve, Dirichlet(1, ..., 1) on a simplex (--layerwise: one per
layer), and adds beta * cos^2 of a random pair of vertices' convolution and linear weights;
SGD's weight decay acts on every vertex. BatchNorm's affine parameters are vertices like the
weights; its running statistics are recomputed at every evaluated point. As learning-subspaces,
it trains on all training images and evaluates on the test set (--no_use_test: a validation split).

After every --eval_freq epochs: the midpoint (alpha = 0.5, a simplex's centroid). At the end, in
subspace.csv and subspace.png: a line or curve at alpha = 0, 0.05, ..., 1, each point alone and
in the ensemble of alpha and 1 - alpha (the paper's Figure 4 pairs); a simplex at its centroid,
its vertices and its edges' midpoints, each edge's midpoint beside the ensemble of the edge's
two ends (a simplex has no single alpha: these are the points every pair of vertices gives a
line through). summary.json: the midpoint's and the endpoints' figures.

Ensembles are learning-subspaces': the argmax of the members' summed logits
(eval_one_dim_subspaces.py), NLL and ECE of the softmax of their mean logits
(simplex_ensembles.py); summary.json has the mean of probabilities beside it
(endpoint_ensemble_prob_acc, endpoint_ensemble_prob_nll). ECEs use --ece_bins bins,
learning-subspaces' 20 by default.
"""
from __future__ import annotations

import csv
import itertools
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

SHAPES = {"line": "PolyChain", "curve": "Bezier", "simplex": "simplex"}  # --shape -> SubspaceModel's shape
# The ECE's bins (--ece_bins): learning-subspaces' M = 20 (trainers/default.py, train_simplexes.py,
# eval_one_dim_subspaces_multigpu.py)
ECE_BINS = 20


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Learn a line, curve or simplex of networks from scratch.")
    cli.add_run_arguments(parser, default_dir="runs/train_subspace")
    cli.add_data_arguments(parser, use_test_default=True, label_noise=True)
    cli.add_model_argument(parser, required=False)
    group = parser.add_argument_group("Subspace")
    group.add_argument("--shape", choices=sorted(SHAPES), default="line",
                       help="line (2 vertices), curve (quadratic Bezier: --num_vertices bends) or simplex")
    group.add_argument("--num_vertices", type=cli.int_at_least(2, "vertices"), default=None,
                       help="vertices of a simplex or bends of a curve (default: 3; a line has 2)")
    group.add_argument("--layerwise", action="store_true", help="draw one point per layer, not one per network")
    group.add_argument("--beta", type=cli.non_negative_float, default=1.0,
                       help="weight of cos^2 between a random pair of vertices (0: none)")
    group = parser.add_argument_group("Optimisation")
    group.add_argument("--epochs", type=cli.positive_int, default=160, help="number of epochs")
    group.add_argument("--lr", type=cli.non_negative_float, default=0.1, help="peak learning rate")
    group.add_argument("--warmup_epochs", type=cli.int_at_least(0), default=5,
                       help="linear warm-up epochs before the cosine decay")
    group.add_argument("--wd", type=cli.non_negative_float, default=1e-4, help="SGD weight decay, on every vertex")
    group.add_argument("--momentum", type=cli.non_negative_float, default=0.9, help="SGD momentum")
    group.add_argument("--save_freq", type=cli.positive_int, default=50, help="keep a checkpoint every N epochs")
    group.add_argument("--resume", default=None, metavar="CKPT",
                       help="continue the run of this subspace checkpoint (or run folder), with its settings")
    group = parser.add_argument_group("Evaluation")
    group.add_argument("--eval_freq", type=cli.positive_int, default=10,
                       help="evaluate the midpoint after epochs 1, 1 + N, ... and the last")
    group.add_argument("--num_points", type=cli.int_at_least(2, "points"), default=21,
                       help="line or curve: values of alpha in [0, 1] evaluated at the end")
    cli.add_train_eval_argument(group)
    cli.add_ece_argument(group, ECE_BINS, "learning-subspaces' M = 20")
    return parser


def resolve_arguments(args, parser, argv) -> tuple[set, str | None]:
    """Settle the flags; returns those given with --resume and its checkpoint's path. Errors before any write."""
    given, path = set(), None
    if args.resume:
        path = runtime.resolve_checkpoint_path(args.resume, runtime.continues_in_place(args, parser, argv))
        ckpt = runtime.load_checkpoint(path, kind="subspace")
        stored = dict(ckpt["args"])
        given = cli.settings_from_checkpoint(args, parser, argv, ckpt, path)
        for flag in ("shape", "num_vertices", "layerwise"):
            if flag in given and getattr(args, flag) != stored.get(flag):
                raise UserError(f"--{flag}={getattr(args, flag)} contradicts {path}, whose subspace has "
                                f"{flag} {stored.get(flag)}")
    elif args.model is None:
        raise UserError("--model is required (or --resume a subspace checkpoint)")
    if args.shape == "line":
        if args.num_vertices not in (None, 2):
            raise UserError(f"a line has 2 vertices, not --num_vertices={args.num_vertices}: use --shape simplex")
        args.num_vertices = 2
    args.num_vertices = args.num_vertices or 3
    if args.warmup_epochs >= args.epochs:
        raise UserError(f"--warmup_epochs={args.warmup_epochs} leaves no epoch of the --epochs={args.epochs} to decay")
    cli.resolve_split(args, True, {path: ckpt} if path else None)  # learning-subspaces tests on the test set
    return given, path


def build_subspace(args, dataset, device) -> curves.SubspaceModel:
    """The subspace, every vertex its own random initialisation (the global RNG, seeded before)."""
    def make():
        return cli.build_model(args.model, dataset, "cpu")

    model = curves.SubspaceModel(make(), SHAPES[args.shape], args.num_vertices, layerwise=args.layerwise,
                                 seed=args.seed)  # points drawn alike on every process
    model.init_random(make)
    if args.beta and not model.cosine_slots:
        raise UserError(f"{args.model} has no convolution or linear weights for the cosine: use --beta 0")
    model.to(device)
    return model.to(memory_format=torch.channels_last) if args.channels_last else model


def points(args) -> list[tuple[str, object, tuple]]:
    """(name, point, members of its pair ensemble) of the final evaluation; a point is alpha on a
    line or curve, a tuple of coefficients on a simplex. The members are points of the list."""
    if args.shape != "simplex":
        alphas = sorted({round(a, 6) for a in np.linspace(0.0, 1.0, args.num_points).tolist()} | {0.5})
        return [(f"alpha={a:g}", a, (a, round(1.0 - a, 6))) for a in alphas]
    n = args.num_vertices
    corner = [tuple(float(i == k) for i in range(n)) for k in range(n)]
    out = [("centroid", tuple(curves.centroid(n).tolist()), ())]
    out += [(f"vertex {k}", corner[k], ()) for k in range(n)]
    out += [(f"edge {i}-{j}", tuple(0.5 * (a + b) for a, b in zip(corner[i], corner[j])), (corner[i], corner[j]))
            for i, j in itertools.combinations(range(n), 2)]
    return out


def ends(args) -> tuple[object, list]:
    """The midpoint and the endpoints (a line's or curve's two ends, a simplex's vertices), as points."""
    if args.shape != "simplex":
        return 0.5, [0.0, 1.0]
    n = args.num_vertices
    return tuple(curves.centroid(n).tolist()), [tuple(float(i == k) for i in range(n)) for k in range(n)]


def evaluate_points(args, model, loaders, amp) -> tuple[list[dict], dict]:
    """The rows of subspace.csv and summary.json. Each point: curves.evaluate_point (BatchNorm
    recomputed there, training and test figures, test logits); then the pair ensembles, by
    learning-subspaces' rule (``ensembles.LogitEnsemble``)."""
    train_loader, labels = cli.train_eval_loader(args, loaders), loaders["test"].labels.cpu().numpy()
    figures, logits, rows = {}, {}, []
    wanted = points(args)
    for i, (_, point, _) in enumerate(cli.progress(wanted, "points")):
        figures[point], logits[point] = curves.evaluate_point(model, point, train_loader, loaders["test"], 0.0,
                                                              amp, draw=i, logits=True)

    def combined(members, kind=ensembles.LogitEnsemble) -> dict:
        ensemble = kind()
        for m in members:
            ensemble.add(logits[m] if kind is ensembles.LogitEnsemble
                         else torch.softmax(torch.from_numpy(logits[m]).double(), 1).numpy())
        return ensemble.metrics(labels, args.ece_bins)

    for name, point, members in wanted:
        row = {"point": name, "alpha": point if args.shape != "simplex" else None,
               "coefficients": " ".join(f"{c:g}" for c in model.coefficients(point).tolist()),
               "train_nll": figures[point]["tr_nll"], "train_acc": figures[point]["tr_acc"],
               "test_nll": figures[point]["te_nll"], "test_acc": figures[point]["te_acc"],
               "test_ece": combined([point])["ece"]}
        if members:  # the point with its mirror 1 - alpha (eval_lines.py's alpha0, alpha1), or an edge's ends
            pair = combined(members)
            row.update(pair_acc=pair["accuracy"], pair_nll=pair["nll"], pair_ece=pair["ece"])
        rows.append(row)
    middle, corners = ends(args)
    ensemble, averaged = combined(corners), combined(corners, ensembles.ProbabilityEnsemble)
    mid = next(r for r, (_, point, _) in zip(rows, wanted) if point == middle)
    summary = {"epoch": args.epochs, "shape": args.shape, "num_vertices": args.num_vertices,
               "midpoint_acc": mid["test_acc"], "midpoint_nll": mid["test_nll"], "midpoint_ece": mid["test_ece"],
               "midpoint_train_nll": mid["train_nll"], "midpoint_train_acc": mid["train_acc"],
               "endpoint_acc": [figures[c]["te_acc"] for c in corners], "endpoint_ensemble_acc": ensemble["accuracy"],
               "endpoint_ensemble_nll": ensemble["nll"], "endpoint_ensemble_ece": ensemble["ece"],
               "endpoint_ensemble_prob_acc": averaged["accuracy"], "endpoint_ensemble_prob_nll": averaged["nll"]}
    return rows, summary


def plot(path: str, args, rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
    x = [r["alpha"] for r in rows] if args.shape != "simplex" else list(range(len(rows)))
    ax.plot(x, [r["test_acc"] for r in rows], "-o" if args.shape != "simplex" else "o", ms=4, label="point")
    paired = [(xi, r["pair_acc"]) for xi, r in zip(x, rows) if "pair_acc" in r]
    label = "ensemble of alpha and 1 - alpha" if args.shape != "simplex" else "ensemble of the edge's ends"
    label += " (summed logits)"
    ax.plot(*zip(*paired), "-s" if args.shape != "simplex" else "s", ms=4, label=label)
    if args.shape == "simplex":
        ax.set_xticks(x, [r["point"] for r in rows], rotation=60, fontsize=7)
    else:
        ax.set_xlabel("alpha")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{args.shape} of {args.num_vertices} {args.model}s on {args.dataset}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    given, resume_path = resolve_arguments(args, parser, argv)
    opened = cli.open_run(args, "train_subspace", resume_from=resume_path, may_differ=given)
    if opened is None:  # finished: nothing to do
        return
    procs, run, dataset, loaders = opened
    model = build_subspace(args, dataset, procs.device)
    # learning-subspaces' optimizer: SGD with weight decay on every vertex, not an L2 term at the point
    optimizer = utils.sgd(model.parameters(), args.lr, args.momentum, args.wd)
    scaler, amp = runtime.grad_scaler(args, procs.device), runtime.autocast_type(args)
    ckpt = run.load()
    start_epoch = 0
    if ckpt is not None:  # the vertices, the BatchNorm buffers and the sampler's stream
        cli.restore_training(ckpt, model, optimizer, scaler, args.momentum, args.wd)
        run.restore_random_state(ckpt)
        start_epoch = ckpt["epoch"]
    run.open_records(resume_epoch=start_epoch if ckpt else None)
    # the points' BatchNorm statistics are recomputed wherever one is evaluated: no buffer syncing
    forward = cli.maybe_compile(procs.wrap(model, broadcast_buffers=False), args.compile)
    regularizer = model.regularizer(beta=args.beta) if args.beta else None
    run.set_payload(lambda: curves.subspace_checkpoint(
        model, args.model, num_classes=dataset.num_classes, model_kwargs=cli.model_kwargs(dataset),
        dataset=args.dataset, transform=args.transform, optimizer=optimizer, args=vars(args),
        scaler_state=scaler.state_dict() if scaler is not None else None))
    if ckpt is None:
        run.save(0, keep=True)

    middle = ends(args)[0]
    bn_loader = cli.train_eval_loader(args, loaders)
    table = cli.Table(["ep", "lr", "tr_loss", "tr_nll", "tr_acc", "te_nll@mid", "te_acc@mid", "time"])
    for epoch in range(start_epoch, args.epochs):
        started = time.time()
        lr = utils.cosine_learning_rate(args.lr, epoch, args.epochs, args.warmup_epochs)
        train = cli.train_epoch(run, forward, loaders["train"], optimizer, epoch, resume=ckpt, lr=lr,
                                regularizer=regularizer, amp=amp, scaler=scaler)
        test = {}
        if epoch % args.eval_freq == 0 or epoch + 1 == args.epochs:  # learning-subspaces' test_freq rule
            test = curves.evaluate_at(model, middle, loaders["test"], bn_loader, amp, draw=epoch,
                                      ece_bins=args.ece_bins)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train["loss"], "train_nll": train["nll"],
               "train_acc": train["accuracy"], "test_nll": test.get("nll"), "test_acc": test.get("accuracy"),
               "test_ece": test.get("ece"), "time": time.time() - started}
        table.print({"ep": epoch + 1, "lr": lr, "tr_loss": train["loss"], "tr_nll": train["nll"],
                     "tr_acc": train["accuracy"], "te_nll@mid": test.get("nll"), "te_acc@mid": test.get("accuracy"),
                     "time": row["time"]})
        run.log(row)
        run.end_epoch(epoch + 1, keep=(epoch + 1) % args.save_freq == 0 or epoch + 1 == args.epochs)

    rows, summary = evaluate_points(args, model, loaders, amp)
    path = run.path("subspace.csv")
    if path:
        with runtime.atomic_open(path) as f:
            writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
            writer.writeheader()
            writer.writerows(rows)
        plot(run.path("subspace.png"), args, rows)
        print(f"midpoint: accuracy {summary['midpoint_acc']:.2f}%, NLL {summary['midpoint_nll']:.4f}, "
              f"ECE {summary['midpoint_ece']:.4f}; endpoints {', '.join(f'{a:.2f}%' for a in summary['endpoint_acc'])},"
              f" their ensemble {summary['endpoint_ensemble_acc']:.2f}%", flush=True)
    run.finish(summary)


if __name__ == "__main__":
    cli.run(main)
