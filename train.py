"""Train one endpoint network with SGD and the papers' learning-rate schedule.

An endpoint of the mode-connectivity paper's Table (VGG16, CIFAR-10):

    python train.py --dir=runs/vgg16-seed1 --dataset=CIFAR10 --data_path=data \
        --model=VGG16 --epochs=200 --lr=0.05 --wd=5e-4 --use_test --transform=VGG

A small run on the bundled DIGITS data (no download, a few seconds on a CPU):

    python train.py --dir=runs/digits --dataset=DIGITS --model=ConvFC --epochs=20 --use_test

With --curve, the same command line fits a curve instead (see train_curve.py).
"""
from __future__ import annotations

import sys
import time

import torch

import cli
import utils
from errors import UserError


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Train a network with SGD (the papers' schedule).")
    cli.add_run_arguments(parser, default_dir="runs/train")
    cli.add_data_arguments(parser)
    cli.add_model_argument(parser, required=False)
    group = parser.add_argument_group("Optimisation")
    group.add_argument("--epochs", type=cli.positive_int, default=200, help="number of epochs")
    group.add_argument("--lr", type=cli.non_negative_float, default=0.01, help="initial learning rate")
    group.add_argument("--wd", type=cli.non_negative_float, default=1e-4, help="weight decay")
    group.add_argument("--momentum", type=cli.non_negative_float, default=0.9, help="SGD momentum")
    group.add_argument("--save_freq", type=cli.positive_int, default=50, help="checkpoint every N epochs")
    group.add_argument("--resume", default=None, metavar="CKPT", help="checkpoint to continue from")
    group.add_argument("--curve", default=None, help="fit a curve instead: see train_curve.py --help")
    return parser


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args, _ = build_parser().parse_known_args(argv)
    ckpt = utils.load_checkpoint(args.resume) if args.resume else None
    if args.curve is not None or (ckpt is not None and ckpt["kind"] == "curve"):
        import train_curve  # the original train.py fitted curves too: hand over

        return train_curve.main(argv)
    args = build_parser().parse_args(argv)
    device = cli.device_of(args)
    if ckpt is not None:  # a 'model' checkpoint: curves went to train_curve above
        cli.resolve_from_checkpoint(args, ckpt, args.resume)
    elif args.model is None:
        raise UserError("--model is required (or --resume a checkpoint)")
    cli.resolve_split(args, False, {args.resume: ckpt} if ckpt else None)  # the original's default: hold out 5000 images

    torch.manual_seed(args.seed)
    dataset, loaders = cli.load_data(args, device)
    model = cli.build_model(args.model, dataset, device, args.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.wd)
    start_epoch = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        utils.set_rng_state(ckpt["rng_state"])
        start_epoch = ckpt["epoch"]

    record = utils.RunRecord(args.dir, vars(args), resume_epoch=start_epoch if ckpt else None)
    forward = cli.maybe_compile(model, args.compile)

    def save(epoch: int) -> None:
        utils.save_checkpoint(utils.checkpoint_path(args.dir, epoch), utils.model_checkpoint(
            args.model, model, num_classes=dataset.num_classes, model_kwargs=cli.model_kwargs(dataset),
            dataset=args.dataset, transform=args.transform, epoch=epoch, optimizer=optimizer,
            args=vars(args)))

    if start_epoch == 0:
        save(0)
    table = cli.Table(["ep", "lr", "tr_loss", "tr_acc", "te_nll", "te_acc", "time"])
    row = None
    for epoch in range(start_epoch, args.epochs):
        started = time.time()
        lr = utils.learning_rate_schedule(args.lr, epoch + 1, args.epochs)  # the original counts from 1
        train = cli.train_epoch(forward, loaders["train"], optimizer, epoch, lr=lr, amp=args.amp)
        test = utils.evaluate(forward, loaders["test"], amp=args.amp)
        row = {"ep": epoch + 1, "lr": lr, "tr_loss": train["loss"], "tr_acc": train["accuracy"],
               "te_nll": test["nll"], "te_acc": test["accuracy"], "time": time.time() - started}
        table.print(row)
        record.log({"epoch": epoch + 1, "lr": lr, "train_loss": train["loss"], "train_acc": train["accuracy"],
                    "test_nll": test["nll"], "test_acc": test["accuracy"], "test_ece": test["ece"],
                    "time": row["time"]})
        if (epoch + 1) % args.save_freq == 0 or epoch + 1 == args.epochs:
            save(epoch + 1)

    if row is None:  # resumed from the last epoch: evaluate what was loaded
        test = utils.evaluate(forward, loaders["test"], amp=args.amp)
        train = utils.evaluate(forward, loaders["train_eval"], amp=args.amp)
        row = {"ep": start_epoch, "tr_loss": train["loss"], "tr_acc": train["accuracy"],
               "te_nll": test["nll"], "te_acc": test["accuracy"]}
    record.summary({"epoch": row["ep"], "train_loss": row["tr_loss"], "train_acc": row["tr_acc"],
                    "test_nll": row["te_nll"], "test_acc": row["te_acc"]})


if __name__ == "__main__":
    cli.run(main)
