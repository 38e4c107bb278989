"""Train one endpoint network with SGD and the papers' learning-rate schedule.

An endpoint of the mode-connectivity paper's Table (VGG16, CIFAR-10):

    python train.py --dir=runs/vgg16-seed1 --dataset=CIFAR10 --data_path=data \
        --model=VGG16 --epochs=200 --lr=0.05 --wd=5e-4 --use_test --transform=VGG

A small run on the bundled DIGITS data (no download, a few seconds on a CPU):

    python train.py --dir=runs/digits --dataset=DIGITS --model=ConvFC --epochs=20 --use_test

With --curve, the same command line fits a curve instead (see train_curve.py).

Started again with the same command, a run continues from its latest checkpoint in --dir
(last.pt after every epoch, checkpoint-<epoch>.pt every --save_freq epochs); SIGTERM or
SIGUSR1 make it write last.pt after the current step and exit with status 75. Under
torchrun --nproc_per_node=N the same command trains on N processes, --batch_size the
global batch.
"""
from __future__ import annotations

import sys
import time


import cli
import runtime
import utils
from runtime.errors import UserError


SCHEDULES = ("linear", "cosine")
# The ECE's bins (--ece_bins): the mode-connectivity and SWA code report no ECE; 15, Guo et al.'s
# count. scripts/subspaces_table.sh passes learning-subspaces' 20 for its standard networks.
ECE_BINS = 15


def learning_rate(args, epoch: int) -> float:
    """The rate of epoch ``epoch`` (from 0) under --schedule."""
    if args.schedule == "cosine":
        return utils.cosine_learning_rate(args.lr, epoch, args.epochs, args.warmup_epochs)
    return utils.learning_rate_schedule(args.lr, epoch + 1, args.epochs)  # the original counts from 1


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Train a network with SGD (the papers' schedule).")
    cli.add_run_arguments(parser, default_dir="runs/train")
    cli.add_data_arguments(parser, label_noise=True)
    cli.add_model_argument(parser, required=False)
    group = parser.add_argument_group("Optimisation")
    group.add_argument("--epochs", type=cli.positive_int, default=200, help="number of epochs")
    group.add_argument("--lr", type=cli.non_negative_float, default=0.01, help="initial learning rate")
    group.add_argument("--wd", type=cli.non_negative_float, default=1e-4, help="weight decay")
    group.add_argument("--momentum", type=cli.non_negative_float, default=0.9, help="SGD momentum")
    group.add_argument("--schedule", choices=SCHEDULES, default="linear",
                       help="linear: the papers' (lr for half the epochs, down to 1%% at 90%%); cosine: per-epoch "
                            "cosine decay after --warmup_epochs, as learning-subspaces and loss-surface-simplexes")
    group.add_argument("--warmup_epochs", type=cli.int_at_least(0), default=0,
                       help="with --schedule cosine: linear warm-up epochs (learning-subspaces: 5)")
    group.add_argument("--save_freq", type=cli.positive_int, default=50, help="keep a checkpoint every N epochs")
    group.add_argument("--resume", default=None, metavar="CKPT",
                       help="continue the run of this checkpoint (or run folder), with its settings")
    group.add_argument("--sync_bn", action="store_true", help="under torchrun: SyncBatchNorm (GPUs only)")
    group.add_argument("--curve", default=None, help="fit a curve instead: see train_curve.py --help")
    cli.add_ece_argument(parser.add_argument_group("Evaluation"), ECE_BINS,
                         "the originals report none; learning-subspaces' standard training: 20")
    return parser


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, _ = parser.parse_known_args(argv)
    resume_path = None
    if args.resume:
        resume_path = runtime.resolve_checkpoint_path(args.resume, runtime.continues_in_place(args, parser, argv))
    resume = runtime.load_checkpoint(resume_path) if resume_path else None
    if args.curve is not None or (resume is not None and resume["kind"] == "curve"):
        import train_curve  # the original train.py fitted curves too: hand over

        return train_curve.main(argv)
    args = parser.parse_args(argv)
    given = ()
    if resume is not None:  # a 'model' checkpoint: curves went to train_curve above
        given = cli.settings_from_checkpoint(args, parser, argv, resume, resume_path)
    elif args.model is None:
        raise UserError("--model is required (or --resume a checkpoint)")
    cli.resolve_split(args, False, {resume_path: resume} if resume else None)  # the original's: hold out 5000
    if args.schedule == "cosine" and args.warmup_epochs >= args.epochs:
        raise UserError(f"--warmup_epochs={args.warmup_epochs} leaves no epoch of the --epochs={args.epochs} to decay")
    opened = cli.open_run(args, "train", resume_from=resume_path, may_differ=given)
    if opened is None:  # finished: nothing to do
        return
    procs, run, dataset, loaders = opened
    model = cli.sync_batchnorm(cli.build_model(args.model, dataset, procs.device, args.channels_last), args, procs)
    optimizer = utils.sgd(model.parameters(), args.lr, args.momentum, args.wd)
    scaler, amp = runtime.grad_scaler(args, procs.device), runtime.autocast_type(args)
    ckpt = run.load()
    start_epoch = 0
    if ckpt is not None:
        cli.restore_training(ckpt, model, optimizer, scaler, args.momentum, args.wd)
        run.restore_random_state(ckpt)
        start_epoch = ckpt["epoch"]
    run.open_records(resume_epoch=start_epoch if ckpt else None)
    forward = cli.maybe_compile(procs.wrap(model), args.compile)
    run.set_payload(lambda: cli.model_payload(args, dataset, model, optimizer, scaler))
    if ckpt is None:
        run.save(0, keep=True)  # the initialisation, as the original's checkpoint-0.pt

    table = cli.Table(["ep", "lr", "tr_loss", "tr_acc", "te_nll", "te_acc", "time"])
    train = test = None
    for epoch in range(start_epoch, args.epochs):
        started = time.time()
        lr = learning_rate(args, epoch)
        train = cli.train_epoch(run, forward, loaders["train"], optimizer, epoch, resume=ckpt, lr=lr, amp=amp,
                                scaler=scaler)
        test = utils.evaluate(forward, loaders["test"], amp=amp, ece_bins=args.ece_bins)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train["loss"], "train_acc": train["accuracy"],
               "test_nll": test["nll"], "test_acc": test["accuracy"], "test_ece": test["ece"],
               "time": time.time() - started}
        table.print({"ep": epoch + 1, "lr": lr, "tr_loss": train["loss"], "tr_acc": train["accuracy"],
                     "te_nll": test["nll"], "te_acc": test["accuracy"], "time": row["time"]})
        run.log(row)
        run.end_epoch(epoch + 1, keep=(epoch + 1) % args.save_freq == 0 or epoch + 1 == args.epochs)

    if train is None:  # stopped after the last epoch, before summary.json: evaluate what was loaded
        test = utils.evaluate(forward, loaders["test"], amp=amp, ece_bins=args.ece_bins)
        train = utils.evaluate(forward, loaders["train_eval"], amp=amp, ece_bins=args.ece_bins)
    run.finish({"epoch": args.epochs, "train_loss": train["loss"], "train_acc": train["accuracy"],
                "test_nll": test["nll"], "test_acc": test["accuracy"], "test_ece": test["ece"]})


if __name__ == "__main__":
    cli.run(main)
