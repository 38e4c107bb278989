"""Stochastic Weight Averaging (Izmailov et al., 2018), from scratch or from a checkpoint.

SWA of the paper's Table 1 (VGG16, CIFAR-100, budget 1.5 = 300 epochs, averaging from epoch 161):

    python swa.py --dir=runs/vgg16-swa --dataset=CIFAR100 --data_path=data --model=VGG16 --epochs=300 \
        --lr_init=0.05 --wd=5e-4 --swa --swa_start=161 --swa_lr=0.01

On DIGITS in a minute, with the budget of a 20-epoch train.py run:

    python swa.py --dir=runs/swa --dataset=DIGITS --model=ConvFC --epochs=20 \
        --lr_init=0.01 --swa --swa_start=11 --swa_lr=0.005 --eval_freq=5

From a trained checkpoint (constant --swa_lr, averaging from --swa_start, default 1):

    python swa.py --dir=runs/swa-ft --ckpt=runs/sgd/checkpoint-16.pt --epochs=4 --swa --swa_lr=0.005

As the SWA code's train.py, it trains on all training images and evaluates on the
test set (--no_use_test holds out a validation split instead; from a checkpoint, the
checkpoint's split), and normalises the inputs as the SWA code's configuration of the
model does (ResNet constants for PreResNet and WideResNet, VGG's otherwise) unless
--transform says otherwise.

Checkpoints checkpoint-<epoch>.pt hold the SGD model, the average (swa_state) and
its count (swa_n); --resume continues from one of them to the same result. At
the end, swa.pt: the average with BatchNorm recomputed, a plain model checkpoint.
Without --swa this is plain SGD with the SWA repository's schedule.

--swag (SWA-Gaussian, Maddox et al. 2019; implies --swa) also collects, along the same SWA phase,
the weights' running mean and variance and the last --max_num_models deviations from the mean
(--no_cov_mat: the diagonal only), every --swag_c_epochs epochs from --swa_start, and writes
swag.pt beside swa.pt: a 'swag' checkpoint that swag.py samples networks from. SWAG of the SWAG
paper's Table 1 (PreResNet164, CIFAR-100; the SWAG code's run_swag.py collects from epoch
--swa_start + 1, here from --swa_start, as SWA's average: one model more, already at --swa_lr):

    python swa.py --dir=runs/preresnet164-swag --dataset=CIFAR100 --data_path=data --model=PreResNet164 \
        --epochs=300 --lr_init=0.1 --wd=3e-4 --swa --swa_start=161 --swa_lr=0.05 --swag --use_test
    python swag.py --dir=runs/preresnet164-swag/bma --ckpt=runs/preresnet164-swag --data_path=data
"""
from __future__ import annotations

import runtime  # first: from here on SIGTERM and SIGUSR1 are remembered, not fatal (runtime.signals)

import sys
import time


import cli
import ensembles
import models
import utils
from runtime.errors import UserError

# The ECE's bins (--ece_bins): the mode-connectivity and SWA code report no ECE; 15, Guo et al.'s
# count. scripts/subspaces_table.sh passes learning-subspaces' 20 for its SWA runs.
ECE_BINS = 15


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Stochastic Weight Averaging (or SGD with the SWA repository's schedule).")
    cli.add_run_arguments(parser, default_dir="runs/swa")
    cli.add_data_arguments(parser, from_checkpoint=True, use_test_default=True, label_noise=True)
    cli.add_model_argument(parser, required=False)
    group = parser.add_argument_group("Optimisation")
    group.add_argument("--epochs", type=cli.positive_int, default=200, help="number of epochs")
    group.add_argument("--lr_init", type=cli.non_negative_float, default=0.1, help="initial learning rate")
    group.add_argument("--wd", type=cli.non_negative_float, default=1e-4, help="weight decay")
    group.add_argument("--momentum", type=cli.non_negative_float, default=0.9, help="SGD momentum")
    group.add_argument("--eval_freq", type=cli.positive_int, default=5, help="evaluate every N epochs")
    group.add_argument("--save_freq", type=cli.positive_int, default=25, help="checkpoint every N epochs")
    group.add_argument("--ckpt", default=None, metavar="CKPT",
                       help="model checkpoint to start from, at --swa_lr (implies --swa)")
    group.add_argument("--resume", default=None, metavar="CKPT", help="swa.py checkpoint to continue from")
    group = parser.add_argument_group("SWA")
    group.add_argument("--swa", action="store_true", help="average the weights")
    group.add_argument("--swa_start", type=cli.positive_int, default=None,
                       help="first epoch (from 1) averaged (default: 161; 1 with --ckpt)")
    group.add_argument("--swa_lr", type=cli.non_negative_float, default=0.05, help="learning rate while averaging")
    group.add_argument("--swa_c_epochs", type=cli.positive_int, default=1, help="average every N epochs")
    group = parser.add_argument_group("SWAG")
    group.add_argument("--swag", action="store_true",
                       help="also collect SWA-Gaussian along the SWA phase and write swag.pt (implies --swa)")
    group.add_argument("--max_num_models", type=cli.int_at_least(2, "models"), default=ensembles.swag.MAX_NUM_MODELS,
                       help="K: the deviations kept, the rank of SWAG's low-rank part")
    group.add_argument("--swag_c_epochs", type=cli.positive_int, default=1, help="collect SWAG every N epochs")
    group.add_argument("--cov_mat", dest="cov_mat", action="store_true", default=True,
                       help="keep the low-rank part (the SWAG code's --cov_mat) (default)")
    group.add_argument("--no_cov_mat", dest="cov_mat", action="store_false",
                       help="the diagonal only (SWAG-Diagonal): 2 copies of the weights instead of K + 2 "
                            "(default: off)")
    cli.add_ece_argument(parser.add_argument_group("Evaluation"), ECE_BINS, "the SWA code reports none")
    return parser


def load_start(args, parser, argv) -> tuple[dict | None, dict | None, set]:
    """Read --resume or --ckpt and settle the flags; every bad input is a UserError, before any write.
    Returns the --resume checkpoint, the --ckpt checkpoint and the flags given with --resume."""
    if args.resume and args.ckpt:
        raise UserError("give --ckpt to start a run, or --resume to continue one, not both")
    resume = start = None
    given = set()
    if args.resume:
        args.resume = runtime.resolve_checkpoint_path(args.resume, runtime.continues_in_place(args, parser, argv))
        resume = runtime.load_checkpoint(args.resume, kind="model")
        if "swa_state" not in resume or resume.get("optimizer_state") is None:
            raise UserError(f"{args.resume} is not a swa.py checkpoint (use --ckpt to start SWA from it)")
        given = cli.settings_from_checkpoint(args, parser, argv, resume, args.resume, script="swa")
    elif args.ckpt:
        args.ckpt = runtime.resolve_checkpoint_path(args.ckpt)
        start = runtime.load_checkpoint(args.ckpt, kind="model")
        cli.resolve_from_checkpoint(args, start, args.ckpt)
        args.swa = True
    elif args.model is None:
        raise UserError("--model is required (or --ckpt / --resume a checkpoint)")
    args.swa = args.swa or args.swag
    args.dataset = args.dataset or "CIFAR10"
    # the SWA code has no --transform: each model's configuration normalises its own way
    args.transform = args.transform or models.default_transform(args.model)
    # nor --use_test: it always trains on all training images and evaluates on the test set
    checkpoint, path = (resume, args.resume) if resume else (start, args.ckpt)
    cli.resolve_split(args, True, {path: checkpoint} if checkpoint else None)
    if args.swa_start is None:
        args.swa_start = 1 if args.ckpt else 161
    if args.swa and args.swa_start > args.epochs:
        raise UserError(f"--swa_start={args.swa_start} is past the last epoch (--epochs={args.epochs}): "
                        "nothing would be averaged")
    return resume, start, given


def restore_swag(collector, ckpt: dict, args, path: str) -> None:
    """The SWAG moments of a continued run; a run that collected none while it should have cannot
    give them back (--swag added with --resume after --swa_start): an error."""
    if ckpt.get("swag_state") is not None:
        # its tensors themselves, and the checkpoint (kept while the epoch resumes) lets go of them:
        # one copy of the moments in memory, not two
        collector.load_state_dict(ckpt.pop("swag_state"), assign=True)
    elif any(ensembles.joins_average(e, args.swa_start, args.swag_c_epochs) for e in range(1, ckpt["epoch"] + 1)):
        raise UserError(f"--swag: {path} holds no SWAG moments, and its run is past --swa_start={args.swa_start}: "
                        "resume from a checkpoint before it, or start the run again with --swag")


def swag_checkpoint(args, dataset, model, collector) -> dict:
    """swag.pt: a 'swag' checkpoint of the SWAG moments (swag_state) and, as model_state, the last
    SGD iterate (BatchNorm statistics included): the SGD baseline of the same run."""
    ckpt = cli.model_payload(args, dataset, model, epoch=args.epochs, swag_state=collector.state_dict(),
                             swag_n=collector.n_models)
    ckpt["kind"] = "swag"
    return ckpt


def learning_rate(args, epoch: int) -> float:
    """The rate of epoch ``epoch`` (from 0): constant swa_lr from a checkpoint, else the SWA schedule."""
    if args.ckpt:
        return args.swa_lr
    if args.swa:
        return ensembles.swa_learning_rate(epoch, args.lr_init, args.epochs, args.swa_start, args.swa_lr)
    return ensembles.swa_learning_rate(epoch, args.lr_init, args.epochs)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    resume, start, given = load_start(args, parser, argv)
    opened = cli.open_run(args, "swa", saves=True, resume_from=args.resume, may_differ=given,
                          networks={args.ckpt: start} if start is not None else None)
    if opened is None:  # finished: nothing to do
        return
    procs, run, dataset, loaders = opened
    model = cli.sync_batchnorm(cli.build_model(args.model, dataset, procs.device, args.channels_last), args, procs)
    optimizer = utils.sgd(model.parameters(), args.lr_init, args.momentum, args.wd)
    scaler, amp = runtime.grad_scaler(args, procs.device), runtime.autocast_type(args)
    average = ensembles.averaged_model(model) if args.swa else None
    collector = ensembles.SWAG(model, args.max_num_models, args.cov_mat) if args.swag else None
    ckpt = run.load()
    start_epoch = 0
    if ckpt is not None:  # this run, continued
        cli.restore_training(ckpt, model, optimizer, scaler, args.momentum, args.wd)
        if average is not None and ckpt["swa_state"] is not None:
            ensembles.load_average(average, ckpt["swa_state"], ckpt["swa_n"])
        if collector is not None:
            restore_swag(collector, ckpt, args, run.checkpoint_path)
        run.restore_random_state(ckpt)
        start_epoch = ckpt["epoch"]
    elif start is not None:  # the flags' momentum and wd win over the checkpoint optimizer's
        cli.restore_training(start, model, optimizer, None, args.momentum, args.wd)
        if average is not None:
            average.module.load_state_dict(model.state_dict())  # the BatchNorm buffers too
    run.open_records(resume_epoch=start_epoch if ckpt else None)
    forward = cli.maybe_compile(procs.wrap(model), args.compile)

    def swa_n() -> int:
        return int(average.n_averaged) if average is not None else 0

    run.set_payload(lambda: cli.model_payload(
        args, dataset, model, optimizer, scaler, swa_n=swa_n(),
        swa_state=average.module.state_dict() if average is not None else None,
        **({"swag_state": collector.state_dict()} if collector is not None else {})))

    def evaluate_average(epoch: int) -> dict:
        # The average's BatchNorm statistics belong to none of the averaged models: recompute
        # them with one pass over the training data (the epoch's batches, so a resumed run agrees).
        loaders["train"].set_epoch(epoch)
        utils.update_bn(average.module, loaders["train"], amp=amp)
        return utils.evaluate(average.module, loaders["test"], amp=amp, ece_bins=args.ece_bins)

    if ckpt is None:
        run.save(0, keep=True)
    if procs.is_main:
        mode = "from " + args.ckpt if args.ckpt else "from scratch"
        print(f"{'SWA' if args.swa else 'SGD'} {mode}: {args.epochs} epochs"
              + (f", averaging from epoch {args.swa_start} every {args.swa_c_epochs}" if args.swa else ""), flush=True)
    table = cli.Table(["ep", "lr", "tr_loss", "tr_acc", "te_nll", "te_acc", "swa_n", "swa_nll", "swa_acc", "time"])
    test, swa = {}, {}
    for epoch in range(start_epoch, args.epochs):
        started = time.time()
        lr = learning_rate(args, epoch)
        train = cli.train_epoch(run, forward, loaders["train"], optimizer, epoch, resume=ckpt, lr=lr, amp=amp,
                                scaler=scaler)
        if average is not None and ensembles.joins_average(epoch + 1, args.swa_start, args.swa_c_epochs):
            average.update_parameters(model)
        if collector is not None and ensembles.joins_average(epoch + 1, args.swa_start, args.swag_c_epochs):
            collector.collect(model)
        last = epoch + 1 == args.epochs
        test, swa = {}, {}
        if epoch == 0 or (epoch + 1) % args.eval_freq == 0 or last:
            test = utils.evaluate(forward, loaders["test"], amp=amp, ece_bins=args.ece_bins)
            if swa_n() > 0:
                swa = evaluate_average(epoch)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train["loss"], "train_acc": train["accuracy"],
               "test_nll": test.get("nll"), "test_acc": test.get("accuracy"), "swa_n": swa_n(),
               "swa_test_nll": swa.get("nll"), "swa_test_acc": swa.get("accuracy"), "time": time.time() - started}
        table.print({"ep": epoch + 1, "lr": lr, "tr_loss": train["loss"], "tr_acc": train["accuracy"],
                     "te_nll": test.get("nll"), "te_acc": test.get("accuracy"), "swa_n": swa_n(),
                     "swa_nll": swa.get("nll"), "swa_acc": swa.get("accuracy"), "time": row["time"]})
        run.log(row)
        # after the BatchNorm update: the saved random state is where the next epoch starts
        run.end_epoch(epoch + 1, keep=(epoch + 1) % args.save_freq == 0 or last)

    if not test:  # stopped after the last epoch, before summary.json: evaluate what was loaded
        test = utils.evaluate(forward, loaders["test"], amp=amp, ece_bins=args.ece_bins)
        if swa_n() > 0:
            swa = evaluate_average(args.epochs - 1)
    path = run.path("swa.pt", prefixed=False)
    if swa_n() > 0 and path:
        runtime.save_checkpoint(path, cli.model_payload(args, dataset, average.module, epoch=args.epochs))
    if collector is not None and collector.n_models > 0 and path:
        runtime.save_checkpoint(run.path("swag.pt", prefixed=False), swag_checkpoint(args, dataset, model, collector))
    figures = {"swag_n": collector.n_models} if collector is not None else {}
    run.finish({"swa_n": swa_n(), "swa_test_acc": swa.get("accuracy"), "swa_test_nll": swa.get("nll"),
                "swa_test_ece": swa.get("ece"), "sgd_test_acc": test["accuracy"], "sgd_test_nll": test["nll"],
                "sgd_test_ece": test["ece"], **figures})


if __name__ == "__main__":
    cli.run(main)
