"""Test accuracy and NLL of each of a list of checkpoints, of their growing ensemble, and its calibration.

The ensemble predicts the mean of its members' softmax probabilities (--combine
probabilities, the mode-connectivity code's rule), or with --combine logits the argmax
of their summed logits (learning-subspaces' rule; its NLL and ECE are those of the
softmax of the mean logits). The FGE paper's independently trained ensemble (Ind),
VGG16 on CIFAR-100, from train.py runs:

    python eval_ensemble.py --dir=runs/vgg16-ind --data_path=data --use_test \
        --ckpt runs/vgg16-seed1/checkpoint-200.pt runs/vgg16-seed2/checkpoint-200.pt

or the snapshots of an fge.py run, or swa.pt files: any model checkpoints of one
architecture. --ckpt may be repeated or take several paths. With --dir it writes
metrics.csv (one row per model), summary.json, ensemble.png (accuracy against the
ensemble's size) and reliability.png (the reliability diagrams of the ensemble and its
members, ECE's bins) there; without it, as the original script, it only prints.
"""
from __future__ import annotations

import runtime  # first: from here on SIGTERM and SIGUSR1 are remembered, not fatal (runtime.signals)

import os
import sys

import numpy as np
import torch

import cli
import ensembles
import models
import utils
from runtime.errors import UserError

# The ECE's bins (--ece_bins): the mode-connectivity code reports no ECE; 15, Guo et al.'s count.
# scripts/subspaces_table.sh passes learning-subspaces' 20 for its Ind.
ECE_BINS = 15


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Individual and ensemble accuracy / NLL of model checkpoints.")
    cli.add_run_arguments(parser)
    cli.add_data_arguments(parser, from_checkpoint=True)
    cli.add_model_argument(parser, required=False)
    parser.add_argument("--ckpt", action="extend", nargs="+", required=True, metavar="CKPT",
                        help="model checkpoints of one architecture (repeat the flag or list several)")
    group = parser.add_argument_group("Ensemble")
    group.add_argument("--combine", choices=sorted(ensembles.ENSEMBLES), default="probabilities",
                       help="probabilities: predict the mean of the members' softmax probabilities (the "
                            "mode-connectivity and FGE code); logits: predict the argmax of the summed logits, "
                            "with the NLL and ECE of the softmax of the mean logits (learning-subspaces' "
                            "eval_ensembles.py)")
    cli.add_ece_argument(group, ECE_BINS, "the original reports none; learning-subspaces: 20")
    return parser


def load_checkpoints(args) -> list[dict]:
    """All checkpoints, checked to be one architecture for one dataset, before anything is written."""
    args.ckpt = [runtime.resolve_checkpoint_path(path) for path in args.ckpt]
    ckpts = [runtime.load_checkpoint(path, kind="model") for path in args.ckpt]
    first, first_path = ckpts[0], args.ckpt[0]
    for ckpt, path in zip(ckpts[1:], args.ckpt[1:]):
        for key in ("model", "num_classes", "model_kwargs", "dataset"):
            if ckpt[key] != first[key]:
                raise UserError(f"{path} has {key} {ckpt[key]}, but {first_path} has {first[key]}: "
                                "an ensemble needs checkpoints of one architecture and dataset")
    cli.resolve_from_checkpoint(args, first, first_path, names=("model", "dataset"))
    # The transform is the checkpoint's unless given; members trained with another
    # normalisation would see other inputs than they were trained on, which is worth a warning.
    if args.transform is None:
        args.transform = first["transform"]
    for ckpt, path in zip(ckpts, args.ckpt):
        if ckpt["transform"] != args.transform:
            print(f"warning: {path} was trained with --transform={ckpt['transform']}, "
                  f"evaluated with {args.transform}", file=sys.stderr)
    cli.resolve_split(args, False, dict(zip(args.ckpt, ckpts)), evaluation_only=True)
    return ckpts


def main(argv=None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    ckpts = load_checkpoints(args)
    opened = cli.open_run(args, "eval_ensemble", saves=False, networks=dict(zip(args.ckpt, ckpts)))
    if opened is None:  # finished: nothing to do
        return
    procs, run, dataset, loaders = opened
    device, amp = procs.device, runtime.autocast_type(args)
    run.open_records()  # without --dir: print only

    ensemble = ensembles.ENSEMBLES[args.combine]()
    table = cli.Table(["#", "checkpoint", "nll", "acc", "ens_nll", "ens_acc"])
    model_acc, model_nll, ens_acc = [], [], []
    ens, members = {}, {}
    for i, (ckpt, path) in enumerate(zip(ckpts, args.ckpt)):
        model = models.model_from_checkpoint(ckpt, device)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        test, predictions, labels = utils.evaluate_with_predictions(
            cli.maybe_compile(model, args.compile), loaders["test"], amp=amp, ece_bins=args.ece_bins,
            logits=args.combine == "logits")  # what the ensemble combines
        nll, acc = test["nll"], test["accuracy"]
        ensemble.add(predictions)
        # the reliability diagram shows probabilities (a logit ensemble's member: the softmax of its logits)
        members[f"{i + 1}: {os.path.join(*path.split(os.sep)[-2:])}"] = (
            torch.softmax(torch.from_numpy(predictions), dim=1).numpy() if args.combine == "logits" else predictions)
        ens = ensemble.metrics(labels, args.ece_bins)
        model_acc.append(acc)
        model_nll.append(nll)
        ens_acc.append(ens["accuracy"])
        table.print({"#": i + 1, "checkpoint": path, "nll": nll, "acc": acc,
                     "ens_nll": ens["nll"], "ens_acc": ens["accuracy"]})
        run.log({"index": i + 1, "checkpoint": path, "test_nll": nll, "test_acc": acc,
                 "ens_nll": ens["nll"], "ens_acc": ens["accuracy"], "ens_ece": ens["ece"]})

    if not procs.is_main:
        return
    print(f"ensemble of {ensemble.size} ({args.combine}): accuracy {ens['accuracy']:.2f}%, NLL {ens['nll']:.4f}, "
          f"ECE {100 * ens['ece']:.2f}% (mean single model: accuracy {np.mean(model_acc):.2f}%)")
    if run.path("ensemble.png"):
        ensembles.plot_ensemble_accuracy(run.path("ensemble.png"), model_acc, ens_acc,
                                         title=f"{args.model} on {args.dataset}", xlabel="number of models")
        name = f"ensemble of {ensemble.size}"
        ensembles.plot_reliability(run.path("reliability.png"), {name: ensemble.probs, **members}, labels,
                                   bins=args.ece_bins, title=f"{args.model} on {args.dataset}", highlight=(name,))
    run.finish({"model_acc": model_acc, "model_nll": model_nll, "ens_acc": ens["accuracy"],
                    "ens_nll": ens["nll"], "ens_ece": ens["ece"], "ensemble_size": ensemble.size,
                    "combine": args.combine})


if __name__ == "__main__":
    cli.run(main)
