"""Fit a Bezier or polygonal-chain curve between two trained networks (Garipov et al., 2018).

The paper's VGG16 / CIFAR-10 Bezier curve, with the original README's command
(train_curve.py takes the same flags; train.py hands over to it when --curve is given):

    python train.py --dir=runs/vgg16-curve --dataset=CIFAR10 --use_test --transform=VGG \
        --data_path=data --model=VGG16 --curve=Bezier --num_bends=3 \
        --init_start=runs/vgg16-seed1/checkpoint-200.pt --init_end=runs/vgg16-seed2/checkpoint-200.pt \
        --fix_start --fix_end --epochs=600 --lr=0.015 --wd=5e-4

On DIGITS in a minute on a CPU (endpoints from train.py with --seed=1 and --seed=2):

    python train_curve.py --dir=runs/digits-curve --dataset=DIGITS --use_test --model=ConvFC \
        --curve=Bezier --num_bends=3 --init_start=runs/ep1/checkpoint-20.pt \
        --init_end=runs/ep2/checkpoint-20.pt --fix_start --fix_end --epochs=10

Training draws one t ~ U(0, 1) per mini-batch and adds 0.5 * wd * ||phi(t)||^2 to the
loss (the optimizer has no weight decay). Evaluation during training: after each
epoch, the curve's midpoint t = 0.5 on the test (or validation) set. For a model
with BatchNorm its running statistics are first recomputed at t = 0.5 with one
pass over the training data (augmented, as eval_curve.py; --train_eval plain for
the images as they are): the statistics accumulated while training mix all t's
and fit none. Use eval_curve.py for the whole curve.
"""
from __future__ import annotations

import sys
import time

import torch

import cli
import curves
import runtime
import utils
from errors import UserError

EVAL_T = 0.5  # the point evaluated after every epoch


num_bends_type = cli.int_at_least(2, "bends")


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Fit a curve between two networks (mode connectivity).")
    cli.add_run_arguments(parser, default_dir="runs/train_curve")
    cli.add_data_arguments(parser, from_checkpoint=True, label_noise=True)
    cli.add_model_argument(parser, required=False)
    group = parser.add_argument_group("Curve")
    group.add_argument("--curve", choices=sorted(curves.CURVES), default=None,
                       help="curve type (default: the --resume checkpoint's)")
    group.add_argument("--num_bends", type=num_bends_type, default=None,
                       help="number of bends, endpoints included (default: 3)")
    group.add_argument("--init_start", default=None, metavar="CKPT", help="model checkpoint for the start")
    group.add_argument("--init_end", default=None, metavar="CKPT", help="model checkpoint for the end")
    group.add_argument("--fix_start", action="store_true", help="do not train the start bend")
    group.add_argument("--fix_end", action="store_true", help="do not train the end bend")
    group.add_argument("--init_linear_off", action="store_true",
                       help="keep the middle bends' random initialisation (default: on the segment)")
    group = parser.add_argument_group("Optimisation")
    group.add_argument("--epochs", type=cli.positive_int, default=200, help="number of epochs")
    group.add_argument("--lr", type=cli.non_negative_float, default=0.01, help="initial learning rate")
    group.add_argument("--wd", type=cli.non_negative_float, default=1e-4,
                       help="weight decay: 0.5 * wd * ||phi(t)||^2 at the sampled t")
    group.add_argument("--momentum", type=cli.non_negative_float, default=0.9, help="SGD momentum")
    group.add_argument("--save_freq", type=cli.positive_int, default=50, help="keep a checkpoint every N epochs")
    group.add_argument("--resume", default=None, metavar="CKPT",
                       help="continue the run of this curve checkpoint (or run folder), with its settings")
    cli.add_train_eval_argument(parser.add_argument_group("Evaluation"))
    return parser


def resolve_arguments(args, parser, argv) -> tuple[dict, set, str | None]:
    """Fill what the checkpoints determine. Returns the endpoint checkpoints by position ('start',
    'end'), the flags given with --resume and the --resume checkpoint's path."""
    if args.resume:
        path = runtime.resolve_checkpoint_path(args.resume, runtime.continues_in_place(args, parser, argv))
        ckpt = utils.load_checkpoint(path, kind="curve")
        given = cli.settings_from_checkpoint(args, parser, argv, ckpt, path,
                                             cli.FROM_CHECKPOINT + ("curve", "num_bends"))
        for flag in ("fix_start", "fix_end"):
            if getattr(args, flag) != ckpt[flag]:
                raise UserError(f"--{flag} contradicts {path}, whose curve has a "
                                f"{'fixed' if ckpt[flag] else 'free'} {flag[4:]}")
        cli.resolve_split(args, False, {path: ckpt})
        return {}, given, path
    if args.curve is None:
        raise UserError("--curve is required (or --resume a curve checkpoint)")
    args.num_bends = args.num_bends or 3
    found = {}
    for which in ("start", "end"):
        path = getattr(args, f"init_{which}")
        if path:
            path = runtime.resolve_checkpoint_path(path)  # a run folder: its latest checkpoint
            setattr(args, f"init_{which}", path)
            ckpt = utils.load_checkpoint(path, kind="model", model=args.model)
            cli.resolve_from_checkpoint(args, ckpt, path)  # model, dataset, transform, label noise
            found[which] = ckpt
    if "start" in found and "end" in found and found["start"]["num_classes"] != found["end"]["num_classes"]:
        raise UserError(f"the endpoints have {found['start']['num_classes']} and {found['end']['num_classes']} "
                        "classes: they must be networks for the same data")
    if args.model is None:
        raise UserError("--model is required (or --init_start / --init_end checkpoints)")
    # the endpoints' split (an error if they differ), else the original's default: hold out images
    cli.resolve_split(args, False, {getattr(args, f"init_{w}"): c for w, c in found.items()})
    for which in ("start", "end"):
        if getattr(args, f"fix_{which}") and which not in found:
            raise UserError(f"--fix_{which} keeps the {which} fixed, so it needs --init_{which} CKPT")
    if args.fix_start and args.fix_end and args.num_bends == 2:
        raise UserError("a 2-bend curve with both ends fixed has nothing to train: use --num_bends 3 or more")
    args.dataset, args.transform = args.dataset or "CIFAR10", args.transform or "VGG"
    return found, set(), None


def build_curve(args, dataset, device, endpoints: dict) -> curves.CurveModel:
    """The curve with every bend set: endpoints from checkpoints (by name), middle bends on the segment.

    A bend that nothing else sets gets its own random initialisation, as in the original code.
    """
    for which, ckpt in endpoints.items():
        if ckpt["num_classes"] != dataset.num_classes:
            raise UserError(f"{getattr(args, 'init_' + which)} has {ckpt['num_classes']} classes, "
                            f"but {dataset.name} has {dataset.num_classes}")
        if ckpt["model_kwargs"] != cli.model_kwargs(dataset):
            raise UserError(f"{getattr(args, 'init_' + which)} was built for {ckpt['model_kwargs']}, "
                            f"but {dataset.name} has {cli.model_kwargs(dataset)}")
    module = cli.build_model(args.model, dataset, device, args.channels_last)
    curve = curves.CurveModel(module, args.curve, args.num_bends, args.fix_start, args.fix_end,
                              seed=args.seed)  # t drawn from a generator of its own: the same on every process
    last = args.num_bends - 1
    linear = not args.init_linear_off and "resume" not in endpoints
    for k in range(1, args.num_bends):
        set_later = (k == last and "end" in endpoints) or (0 < k < last and linear)
        if not set_later:
            curve.load_bend(k, cli.build_model(args.model, dataset, "cpu").state_dict())
    if "resume" in endpoints:
        curve.load_state_dict(endpoints["resume"]["model_state"])
        return curve
    for k, which in ((0, "start"), (last, "end")):
        if which in endpoints:
            curve.load_bend(k, endpoints[which]["model_state"])
    if linear:
        curve.init_linear()
    return curve


def point_predictions(curve: curves.SubspaceModel, t, loader, bn_loader, amp: bool, draw: int = 0,
                      ece_bins: int = utils.ECE_BINS, logits: bool = False):
    """NLL, accuracy and ECE (``ece_bins`` bins) of the curve (or subspace) at a point ``t`` on
    ``loader``, with the probabilities (or, with ``logits``, the logits) and labels behind them;
    BatchNorm statistics recomputed at t first on ``bn_loader`` (its augmentation draws number ``draw``)."""
    forward = curve.at(t)
    if utils.has_batchnorm(curve):
        bn_loader.set_epoch(draw)
        utils.update_bn(curve, bn_loader, forward=forward, amp=amp)
    curve.eval()  # evaluate() puts only nn.Modules in eval mode, and a lambda is not one
    return utils.evaluate_with_predictions(forward, loader, amp=amp, ece_bins=ece_bins, logits=logits)


def evaluate_at(curve: curves.SubspaceModel, t, loader, bn_loader, amp: bool, draw: int = 0,
                ece_bins: int = utils.ECE_BINS) -> dict:
    """``point_predictions``' figures alone (and ``loss``, the NLL)."""
    metrics = point_predictions(curve, t, loader, bn_loader, amp, draw, ece_bins)[0]
    return {"loss": metrics["nll"], **metrics}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    endpoints, given, resume_path = resolve_arguments(args, parser, argv)
    procs = runtime.start_processes(args)
    run = runtime.Run(args, procs, script="train_curve", resume_from=resume_path, may_differ=given)
    if run.state == "finished":
        return cli.finished(run)

    torch.manual_seed(args.seed)
    dataset, loaders = cli.load_data(args, procs)
    ckpt = run.load()
    curve = build_curve(args, dataset, procs.device, {"resume": ckpt} if ckpt else endpoints)
    # free bends only: fixed endpoints are buffers. No optimizer weight decay: the L2 term is on phi(t).
    optimizer = utils.sgd(curve.parameters(), args.lr, args.momentum, weight_decay=0.0)
    scaler, amp = runtime.grad_scaler(args, procs.device), runtime.autocast_type(args)
    start_epoch = 0
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer_state"])
        if scaler is not None and ckpt.get("scaler_state"):
            scaler.load_state_dict(ckpt["scaler_state"])
        curve.load_sampler_state(ckpt["sampler_state"])
        run.restore_random_state(ckpt)
        start_epoch = ckpt["epoch"]
    run.open_records(resume_epoch=start_epoch if ckpt else None)
    # the bends' BatchNorm statistics are recomputed wherever the curve is evaluated: no buffer syncing
    forward = cli.maybe_compile(procs.wrap(curve, broadcast_buffers=False), args.compile)
    bn_loader = cli.train_eval_loader(args, loaders)
    regularizer = curve.regularizer(args.wd)
    run.set_payload(lambda: curves.curve_checkpoint(
        curve, args.model, num_classes=dataset.num_classes, model_kwargs=cli.model_kwargs(dataset),
        dataset=args.dataset, transform=args.transform, optimizer=optimizer, args=vars(args),
        scaler_state=scaler.state_dict() if scaler is not None else None, sampler_state=curve.sampler_state()))
    if ckpt is None:
        run.save(0, keep=True)

    table = cli.Table(["ep", "lr", "tr_loss", "tr_nll", "tr_acc", "te_nll@.5", "te_acc@.5", "time"])
    train = None
    for epoch in range(start_epoch, args.epochs):
        started = time.time()
        lr = utils.learning_rate_schedule(args.lr, epoch + 1, args.epochs)  # the original counts from 1
        train = cli.train_epoch(run, forward, loaders["train"], optimizer, epoch, resume=ckpt, lr=lr,
                                regularizer=regularizer, amp=amp, scaler=scaler)
        test = evaluate_at(curve, EVAL_T, loaders["test"], bn_loader, amp, draw=epoch)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train["loss"], "train_nll": train["nll"],
               "train_acc": train["accuracy"], "test_t": EVAL_T, "test_nll": test["nll"],
               "test_acc": test["accuracy"], "time": time.time() - started}
        table.print({"ep": epoch + 1, "lr": lr, "tr_loss": train["loss"], "tr_nll": train["nll"],
                     "tr_acc": train["accuracy"], "te_nll@.5": test["nll"], "te_acc@.5": test["accuracy"],
                     "time": row["time"]})
        run.log(row)
        run.end_epoch(epoch + 1, keep=(epoch + 1) % args.save_freq == 0 or epoch + 1 == args.epochs)

    if train is None:  # stopped after the last epoch, before summary.json: the curve's figures at t = 0.5
        train = evaluate_at(curve, EVAL_T, loaders["train_eval"], bn_loader, amp, draw=args.epochs - 1)
        train["loss"] += float(curve.l2(args.wd, EVAL_T))
    run.finish({"epoch": args.epochs, "train_loss": train["loss"], "train_acc": train["accuracy"]})


if __name__ == "__main__":
    cli.run(main)
