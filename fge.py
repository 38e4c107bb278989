"""Fast Geometric Ensembling (Garipov et al., 2018) from a checkpoint; Snapshot Ensembles with --schedule cosine.

FGE of the paper's Table 2 (VGG16, CIFAR-100, budget 200 epochs): the last 40
epochs of a 200-epoch training run are spent on 2-epoch cycles, 20 snapshots:

    python train.py --dir=runs/vgg16 --dataset=CIFAR100 --data_path=data --use_test --transform=VGG \
        --model=VGG16 --epochs=200 --lr=0.05 --wd=5e-4 --save_freq=40
    python fge.py --dir=runs/vgg16-fge --ckpt=runs/vgg16/checkpoint-160.pt --data_path=data \
        --dataset=CIFAR100 --use_test --transform=VGG --model=VGG16 --epochs=40 --wd=5e-4 \
        --lr_1=1e-2 --lr_2=1e-2 --cycle=2

On DIGITS in a few seconds, 4 cycles from 80% of a 20-epoch run:

    python train.py --dir=runs/sgd --dataset=DIGITS --model=ConvFC --epochs=20 --use_test --save_freq=16
    python fge.py --dir=runs/fge --ckpt=runs/sgd/checkpoint-16.pt --epochs=8 --cycle=2 --lr_1=0.01 --lr_2=0.0005

Snapshots are written as fge-<epoch>.pt (plain model checkpoints; <epoch> counts
the checkpoint's epochs too, as in the original code, and so does every epoch this
run prints and records: metrics.csv, summary.json's snapshot_epochs), ensemble.png plots the
ensemble's accuracy against its size. With --schedule cosine and no --ckpt, SSE
trains from scratch (--model and --dataset then needed).
"""
from __future__ import annotations

import sys
import time


import cli
import ensembles
import runtime
import utils
from runtime.errors import UserError

# The ECE's bins (--ece_bins): the mode-connectivity code reports no ECE; 15, Guo et al.'s count.
ECE_BINS = 15

def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Fast Geometric Ensembling (or Snapshot Ensembles) from a checkpoint.")
    cli.add_run_arguments(parser, default_dir="runs/fge")
    cli.add_data_arguments(parser, from_checkpoint=True, label_noise=True)
    cli.add_model_argument(parser, required=False)
    group = parser.add_argument_group("Ensembling")
    group.add_argument("--ckpt", default=None, metavar="CKPT",
                       help="model checkpoint to start from (train.py); optional only with --schedule cosine")
    group.add_argument("--schedule", choices=ensembles.SCHEDULES, default="linear",
                       help="linear: FGE's triangle lr_1 -> lr_2 -> lr_1; cosine: SSE, lr_1 -> 0, restarted")
    group.add_argument("--cycle", type=int, default=4, help="cycle length in epochs (even for FGE)")
    group.add_argument("--lr_1", type=cli.non_negative_float, default=0.05, help="highest learning rate")
    group.add_argument("--lr_2", type=cli.non_negative_float, default=0.0001,
                       help="lowest learning rate (FGE; SSE anneals towards 0)")
    group.add_argument("--epochs", type=cli.positive_int, default=20, help="number of epochs")
    group.add_argument("--wd", type=cli.non_negative_float, default=1e-4, help="weight decay")
    group.add_argument("--momentum", type=cli.non_negative_float, default=0.9, help="SGD momentum")
    cli.add_ece_argument(parser.add_argument_group("Evaluation"), ECE_BINS, "the original reports none")
    return parser


def check_schedule(args) -> list[int]:
    """The snapshot epochs (from 1); impossible cycles are UserErrors, raised before anything is written."""
    if args.cycle < 1:
        raise UserError(f"--cycle must be a positive number of epochs, not {args.cycle}")
    if args.schedule == "linear" and args.cycle % 2:
        raise UserError(f"--cycle must be even for FGE (a snapshot at each cycle's midpoint), not {args.cycle}")
    epochs = ensembles.snapshot_epochs(args.epochs, args.cycle, args.schedule)
    if not epochs:
        raise UserError(f"--epochs={args.epochs} ends before the first snapshot "
                        f"(epoch {args.cycle // 2 if args.schedule == 'linear' else args.cycle})")
    return epochs


def load_start(args) -> dict | None:
    """The checkpoint FGE starts from (a file, or a run folder's latest), with the flags settled."""
    ckpt = None
    if args.ckpt is not None:
        args.ckpt = runtime.resolve_checkpoint_path(args.ckpt)
        ckpt = runtime.load_checkpoint(args.ckpt, kind="model")
        cli.resolve_from_checkpoint(args, ckpt, args.ckpt)
    elif args.schedule != "cosine":
        raise UserError("--ckpt is required: FGE starts from a trained model (only SSE may start from scratch)")
    elif args.model is None:
        raise UserError("--model is required when SSE starts from scratch (no --ckpt)")
    else:
        args.dataset = args.dataset or "CIFAR10"
        args.transform = args.transform or "VGG"
    cli.resolve_split(args, False, {args.ckpt: ckpt} if ckpt else None)  # FGE continues on the checkpoint's images
    return ckpt


def main(argv=None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    snapshots = check_schedule(args)
    start = load_start(args)
    opened = cli.open_run(args, "fge", networks={args.ckpt: start} if start is not None else None)
    if opened is None:  # finished: nothing to do
        return
    procs, run, dataset, loaders = opened
    model = cli.build_model(args.model, dataset, procs.device, args.channels_last)
    optimizer = utils.sgd(model.parameters(), args.lr_1, args.momentum, args.wd)
    scaler, amp = runtime.grad_scaler(args, procs.device), runtime.autocast_type(args)
    # one numbering of epochs throughout, the original's: this run's epochs count on from the checkpoint's
    # (its data draws too, fge-<epoch>.pt, the printed and recorded epochs); the cycle counts this run's
    offset = start["epoch"] if start is not None else 0
    snapshots = [offset + e for e in snapshots]
    ensemble = ensembles.ProbabilityEnsemble()
    snapshot_acc, ensemble_acc = [], []
    ckpt = run.load()
    done = 0
    if ckpt is not None:  # this run, continued
        cli.restore_training(ckpt, model, optimizer, scaler, args.momentum, args.wd)
        run.restore_random_state(ckpt)
        ensemble.load_state(ckpt["ensemble"])
        snapshot_acc, ensemble_acc = list(ckpt["snapshot_acc"]), list(ckpt["ensemble_acc"])
        done = ckpt["epoch"]
    elif start is not None:
        # swa.pt has no optimizer state: momentum then starts from zero; the flags' momentum and wd win
        cli.restore_training(start, model, optimizer, None, args.momentum, args.wd)
    run.open_records(resume_epoch=offset + done if ckpt else None)
    forward = cli.maybe_compile(procs.wrap(model), args.compile)
    run.set_payload(lambda: cli.model_payload(args, dataset, model, optimizer, scaler, ensemble=ensemble.state(),
                                              snapshot_acc=snapshot_acc, ensemble_acc=ensemble_acc))
    name = "FGE" if args.schedule == "linear" else "SSE"
    if procs.is_main:
        print(f"{name}: epochs {offset + 1} to {offset + args.epochs}, cycle {args.cycle}, "
              f"snapshots after epochs {', '.join(map(str, snapshots))}", flush=True)

    def lr_at(epoch: int, fraction: float) -> float:
        if args.schedule == "linear":
            return ensembles.fge_learning_rate(epoch, fraction, args.cycle, args.lr_1, args.lr_2)
        return ensembles.sse_learning_rate(epoch, fraction, args.cycle, args.lr_1)

    table = cli.Table(["ep", "lr", "tr_loss", "tr_acc", "te_nll", "te_acc", "ens", "ens_nll", "ens_acc", "time"])
    for epoch in range(done, args.epochs):  # the cycle arithmetic counts this run's epochs, from 0
        started = time.time()
        # the data draws continue the checkpoint's epochs; the cycle counts this run's
        train = cli.train_epoch(run, forward, loaders["train"], optimizer, epoch, resume=ckpt, draws=offset + epoch,
                                lr_fn=lambda fraction: lr_at(epoch, fraction), amp=amp, scaler=scaler)
        test, probs, labels = utils.evaluate_with_predictions(forward, loaders["test"], amp=amp, ece_bins=args.ece_bins)
        snapshot = ensembles.is_snapshot_epoch(epoch, args.cycle, args.schedule)
        if snapshot:  # the lowest rate of the cycle: collect this model
            ensemble.add(probs)
            snapshot_acc.append(test["accuracy"])
            ensemble_acc.append(ensemble.metrics(labels, args.ece_bins)["accuracy"])
            path = run.path(f"fge-{offset + epoch + 1}.pt", prefixed=False)
            if path:
                runtime.save_checkpoint(path, cli.model_payload(args, dataset, model, optimizer, epoch=offset + epoch + 1))
        ens = ensemble.metrics(labels, args.ece_bins) if ensemble.size else {}
        lr = lr_at(epoch, 1.0)  # the rate the epoch ends at: lr_2 (or 0) at a snapshot
        row = {"epoch": offset + epoch + 1, "lr": lr, "train_loss": train["loss"], "train_acc": train["accuracy"],
               "test_nll": test["nll"], "test_acc": test["accuracy"], "snapshot": int(snapshot),
               "ensemble_size": ensemble.size, "ens_nll": ens.get("nll"), "ens_acc": ens.get("accuracy"),
               "ens_ece": ens.get("ece"), "time": time.time() - started}
        table.print({"ep": offset + epoch + 1, "lr": lr, "tr_loss": train["loss"], "tr_acc": train["accuracy"],
                     "te_nll": test["nll"], "te_acc": test["accuracy"], "ens": ensemble.size,
                     "ens_nll": ens.get("nll"), "ens_acc": ens.get("accuracy"), "time": row["time"]})
        run.log(row)
        run.end_epoch(epoch + 1, keep=False)

    ens = ensemble.metrics(loaders["test"].labels.cpu().numpy(), args.ece_bins)
    plot = run.path("ensemble.png")
    if plot:
        ensembles.plot_ensemble_accuracy(plot, snapshot_acc, ensemble_acc, title=f"{name}, {args.model} on {args.dataset}")
    run.finish({"ensemble_size": ensemble.size, "ens_acc": ens["accuracy"], "ens_nll": ens["nll"],
                "ens_ece": ens["ece"], "model_acc": snapshot_acc[-1], "snapshot_epochs": snapshots})


if __name__ == "__main__":
    cli.run(main)
