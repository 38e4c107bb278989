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
"""
from __future__ import annotations

import csv
import os

import numpy as np
import torch

import cli
import curves
import runtime
import utils
from errors import UserError

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
    group.add_argument("--num_points", type=points_type, default=61, help="number of values of t in [0, 1]")
    group.add_argument("--wd", type=cli.non_negative_float, default=None,
                       help="weight of the L2 term in the train loss (default: the training run's, else 1e-4)")
    group.add_argument("--ensemble", action="store_true", help="also evaluate the ensemble along the curve")
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
        ckpt = utils.load_checkpoint(args.ckpt, kind="curve", model=args.model)
        cli.resolve_from_checkpoint(args, ckpt, args.ckpt, ("model", "dataset", "transform", "curve", "num_bends"))
        checkpoints, trained_wd = {args.ckpt: ckpt}, ckpt["args"].get("wd")
    elif args.init_start and args.init_end:
        if args.curve not in (None, "PolyChain") or args.num_bends not in (None, 2):
            raise UserError("the straight segment is a PolyChain of 2 bends: leave out --curve and --num_bends")
        args.curve, args.num_bends = "PolyChain", 2
        checkpoints = {}
        for path in (args.init_start, args.init_end):
            checkpoints[path] = utils.load_checkpoint(path, kind="model", model=args.model)
            cli.resolve_from_checkpoint(args, checkpoints[path], path)
        trained_wd = checkpoints[args.init_start]["args"].get("wd")
    else:
        raise UserError("give --ckpt CURVE, or --init_start A --init_end B for the straight segment")
    cli.resolve_split(args, False, checkpoints, evaluation_only=True)
    if args.wd is None:
        args.wd = trained_wd if trained_wd is not None else 1e-4
    return checkpoints


def build_curve(args, checkpoints: dict, dataset, device) -> curves.CurveModel:
    """The curve of --ckpt, or the straight segment: a 2-bend PolyChain between the two networks."""
    for path, ckpt in checkpoints.items():
        if ckpt["num_classes"] != dataset.num_classes or ckpt["model_kwargs"] != cli.model_kwargs(dataset):
            raise UserError(f"{path} holds a network for {ckpt['num_classes']} classes and {ckpt['model_kwargs']}, "
                            f"but {dataset.name} has {dataset.num_classes} classes and {cli.model_kwargs(dataset)}")
    if args.ckpt:
        curve = curves.curve_from_checkpoint(checkpoints[args.ckpt], device)
    else:
        curve = curves.CurveModel(cli.build_model(args.model, dataset, device), "PolyChain", 2, True, True)
        curve.load_bend(0, checkpoints[args.init_start]["model_state"])
        curve.load_bend(1, checkpoints[args.init_end]["model_state"])
    if args.channels_last:
        curve.to(memory_format=torch.channels_last)
    return curve


def evaluate_point(curve, t: float, train_loader, test_loader, wd: float, amp: bool,
                   draw: int = 0, logits: bool = False) -> tuple[dict, np.ndarray]:
    """The figures of one point, and its test probabilities (N, classes) for the ensemble (its
    test logits with ``logits``).

    ``train_loader`` serves the BatchNorm update and the train figures; if it augments,
    ``draw`` numbers the point, so that each pass gets its own crops and a rerun the same.
    """
    forward = curve.at(t)  # phi(t) computed once for all the batches below
    if utils.has_batchnorm(curve):
        train_loader.set_epoch(2 * draw)
        utils.update_bn(curve, train_loader, forward=forward, amp=amp)
    curve.eval()
    with torch.no_grad():
        l2 = float(curve.l2(wd, t))
    train_loader.set_epoch(2 * draw + 1)
    train = utils.evaluate(forward, train_loader, amp=amp)
    test, probs, _ = utils.evaluate_with_predictions(forward, test_loader, amp=amp, logits=logits)
    test_nll, test_acc = test["nll"], test["accuracy"]
    return {"t": t, "tr_loss": train["nll"] + l2, "tr_nll": train["nll"], "tr_acc": train["accuracy"],
            "tr_err": 100.0 - train["accuracy"], "te_loss": test_nll + l2, "te_nll": test_nll,
            "te_acc": test_acc, "te_err": 100.0 - test_acc}, probs


def write_outputs(directory: str, records: list[dict]) -> None:
    """curve.npz (arrays built once from the records), curve.csv and curve.png."""
    arrays = {key: np.array([r["t" if key == "ts" else key] for r in records]) for key in COLUMNS}
    with utils.atomic_open(os.path.join(directory, "curve.npz"), "wb") as f:
        np.savez(f, **arrays)
    with utils.atomic_open(os.path.join(directory, "curve.csv")) as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    plot(os.path.join(directory, "curve.png"), arrays)


def plot(path: str, arrays: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    ts = arrays["ts"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, key, label, colour in ((left, "tr_loss", "train loss", "tab:blue"),
                                   (right, "te_err", "test error (%)", "tab:red")):
        ax.plot(ts, arrays[key], color=colour, lw=2)
        ax.plot(ts[[0, -1]], arrays[key][[0, -1]], "o", color="black", ms=7, label="endpoints")
        ax.set_xlabel("t")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    checkpoints = load_checkpoints(args)
    procs = runtime.start_processes(args)
    run = runtime.Run(args, procs, script="eval_curve")
    if run.state == "finished":
        return cli.finished(run)
    dataset, loaders = cli.load_data(args, procs)
    curve = build_curve(args, checkpoints, dataset, procs.device)
    amp = runtime.autocast_type(args)
    run.open_records()
    table = cli.Table(["t", "tr_loss", "tr_nll", "tr_err", "te_nll", "te_err", "dl"])

    records, previous, ensemble = [], None, None
    train_loader = cli.train_eval_loader(args, loaders)
    for i, t in enumerate(cli.progress(np.linspace(0.0, 1.0, args.num_points).tolist(), "points")):
        with torch.no_grad():
            weights = curve.weights(t)
        dl = 0.0 if previous is None else curves.distance(previous, weights)  # one point's weights held, not all
        previous = weights
        point, probs = evaluate_point(curve, t, train_loader, loaders["test"], args.wd, amp, draw=i)
        point = {"t": t, "dl": dl, **{k: v for k, v in point.items() if k != "t"}}
        if args.ensemble:
            ensemble = probs if ensemble is None else ensemble + probs
        records.append(point)
        run.log(point)
        table.print(point)

    if run.path("curve.npz"):
        write_outputs(args.dir, records)
    dl = [r["dl"] for r in records]
    summary = {"length": float(sum(dl))}
    for name, key in SUMMARY.items():
        summary[name] = curves.summarise([r[key] for r in records], dl)
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
