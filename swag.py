"""SWAG's Bayesian model average (Maddox et al., 2019): networks drawn from the Gaussian that
``swa.py --swag`` collected, their test probabilities averaged, beside SWA (its mean) and SGD.

The SWAG paper's CIFAR-100 entry from the run of swa.py's docstring (the SWAG code's
``uncertainty.py --method=SWAG --cov_mat --scale=0.5 --N=30``; SWAG-Diagonal: add --no_cov_mat,
its --use_diag):

    python swag.py --dir=runs/preresnet164-swag/bma --ckpt=runs/preresnet164-swag --data_path=data \
        --scale=0.5 --num_samples=30

On DIGITS in a few minutes on a CPU:

    python swa.py --dir=runs/swag --dataset=DIGITS --model=ConvFC --epochs=20 --lr_init=0.05 \
        --swag --swa_start=11 --swa_lr=0.01
    python swag.py --dir=runs/swag/bma --ckpt=runs/swag

Each network drawn gets its BatchNorm statistics recomputed with one pass over the training images
of the run's split, and so does SWA's mean: the same pass for all, the one swa.py's last evaluation
of its average made (same --seed, --batch_size and augmentation draws, by default the run's), so
that draws differ only in their weights, --scale=0 gives SWA exactly, and SWA's figures here are
swa.py's. SGD is the run's last iterate with its own statistics, as swa.py evaluates it. Every
figure of summary.json comes from the test probabilities: NLL the mean over the test images.

Writes metrics.csv (a row per draw: its own figures and the average's so far), summary.json
(swag_, swa_ and sgd_ acc, nll and ece, and more), reliability.png (SGD, SWA and SWAG),
predictions.npz (their test probabilities and the labels), command.sh and args.json. Started
again, a stopped run goes on after its last draw (last.pt).
"""
from __future__ import annotations

import runtime  # first: from here on SIGTERM and SIGUSR1 are remembered, not fatal (runtime.signals)

import os
import sys
import time

import numpy as np
import torch

import cli
import ensembles
import models
import utils
from runtime.errors import UserError

# The ECE's bins (--ece_bins): the SWAG code's calibration curves and ECE take 20
# (experiments/uncertainty/save_calibration_curves.py --num_bins), of equal counts; ours equal widths.
ECE_BINS = 20


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="SWAG: the Bayesian model average of networks drawn from swa.py --swag's "
                                            "Gaussian, beside SWA and SGD.")
    cli.add_run_arguments(parser, default_dir="runs/swag")
    cli.add_data_arguments(parser, from_checkpoint=True)
    group = parser.add_argument_group("SWAG")
    group.add_argument("--ckpt", required=True, metavar="CKPT", help="swag.pt of swa.py --swag, or its run folder")
    group.add_argument("--num_samples", "--N", type=cli.positive_int, default=30,
                       help="networks drawn (the SWAG code's uncertainty.py --N)")
    group.add_argument("--scale", type=cli.non_negative_float, default=0.5,
                       help="the covariance's scale (the SWAG paper's and its commands' 0.5; 0 is SWA)")
    group.add_argument("--cov_mat", dest="cov_mat", action="store_const", const=True, default=None,
                       help="draw with the low-rank part (default: when swag.pt has it)")
    group.add_argument("--no_cov_mat", "--use_diag", dest="cov_mat", action="store_const", const=False,
                       help="the diagonal only: SWAG-Diagonal (the SWAG code's --use_diag)")
    cli.add_ece_argument(group, ECE_BINS, "the SWAG code's")
    # by default the run's: its last evaluation's BatchNorm pass is then this one's
    for action in parser._actions:
        if action.dest == "seed":
            action.default, action.help = None, "seed of the draws and of the BatchNorm pass's augmentation " \
                                                 "(default: the swa.py run's)"
        if action.dest == "batch_size":
            action.help = "mini-batch size (default: the swa.py run's)"
    return parser


def load(args) -> dict:
    """swag.pt, and the flags it settles; every mistake a UserError before anything is written."""
    path = os.path.join(args.ckpt, "swag.pt") if os.path.isdir(args.ckpt) else args.ckpt
    if os.path.isdir(args.ckpt) and not os.path.isfile(path):
        raise UserError(f"{args.ckpt} holds no swag.pt (swa.py --swag writes it at the end of its run)")
    ckpt = runtime.load_checkpoint(path)
    if ckpt["kind"] != "swag":
        raise UserError(f"{path} is a {ckpt['kind']!r} checkpoint, not the 'swag' checkpoint of swa.py --swag (swag.pt)")
    args.ckpt = path
    cli.resolve_from_checkpoint(args, ckpt, path, ("dataset", "transform"))
    cli.resolve_split(args, True, {path: ckpt}, evaluation_only=True)
    stored = ckpt.get("args") or {}
    # the BatchNorm pass of swa.py's last evaluation: its seed's draws in its batches
    if args.seed is None:
        args.seed = stored.get("seed", 1)
    if args.batch_size is None:
        args.batch_size = stored.get("batch_size")
    state = ckpt["swag_state"]
    if args.cov_mat is None:
        args.cov_mat = bool(state["cov_mat"])
    elif args.cov_mat and not state["cov_mat"]:
        raise UserError(f"--cov_mat: {path} was collected without the low-rank part (swa.py --no_cov_mat)")
    return ckpt


def main(argv=None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    ckpt = load(args)
    opened = cli.open_run(args, "swag", saves=True, networks={args.ckpt: ckpt})
    if opened is None:  # finished: nothing to do
        return
    procs, run, dataset, loaders = opened
    amp = runtime.autocast_type(args)
    module = models.model_from_checkpoint(ckpt, procs.device)  # the last SGD iterate
    if args.channels_last:
        module.to(memory_format=torch.channels_last)
    forward = cli.maybe_compile(module, args.compile)
    swag = ensembles.SWAG.from_state_dict(module, ckpt.pop("swag_state"), procs.device, assign=True)
    labels = loaders["test"].labels.cpu().numpy()
    bn = {"bn_loader": loaders["train"], "test_loader": loaders["test"], "amp": amp,
          "draw": ckpt["epoch"] - 1, "forward": forward, "ece_bins": args.ece_bins}  # swa.py's last epoch, from 0

    state = run.load()  # a stopped run of this command: its draws so far
    ensemble = ensembles.ProbabilityEnsemble()
    if state is not None:
        ensemble.load_state(state["ensemble"])
        baselines = {name: state[name].numpy() for name in ("sgd", "swa")}
        rows = list(state["rows"])
    else:
        sgd = utils.evaluate_with_predictions(forward, loaders["test"], amp=amp)[1]
        baselines = {"sgd": sgd, "swa": ensembles.evaluate_vector(swag, module, swag.mean, **bn).probs}
        rows = []
    done = len(rows)
    run.open_records(resume_epoch=done if state is not None else None, progress_key="sample")
    run.set_payload(lambda: {"kind": "swag_evaluation", "model_state": {}, "args": vars(args),
                             "ensemble": ensemble.state(), "rows": rows,
                             **{name: torch.from_numpy(p) for name, p in baselines.items()}})
    if state is None:
        run.save(0, keep=False)
    # in float64, as the average's: at --scale=0 the same probabilities give the same figures
    figures = {name: utils.prediction_metrics(p.astype(np.float64), labels, args.ece_bins)
               for name, p in baselines.items()}
    if procs.is_main:
        print(f"{ckpt['model']} on {args.dataset}: SWAG of {swag.n_models} models"
              + (f", rank {swag.rank}" if args.cov_mat else ", diagonal") + f"; {args.num_samples} draws at scale "
              f"{args.scale:g}; SWA accuracy {figures['swa']['accuracy']:.2f}%, NLL {figures['swa']['nll']:.4f}; "
              f"SGD {figures['sgd']['accuracy']:.2f}%, NLL {figures['sgd']['nll']:.4f}", flush=True)
    table = cli.Table(["#", "acc", "nll", "ece", "swag_acc", "swag_nll", "swag_ece", "time"])
    started = time.time()
    draws = ensembles.bayesian_model_average(swag, module, num_samples=args.num_samples, scale=args.scale,
                                             cov=args.cov_mat, seed=args.seed, ensemble=ensemble, start=done, **bn)
    for draw in cli.progress(draws, "draws", total=args.num_samples - done):
        average = ensemble.metrics(labels, args.ece_bins)
        row = {"sample": draw.index + 1, "sample_acc": draw.metrics["accuracy"], "sample_nll": draw.metrics["nll"],
               "sample_ece": draw.metrics["ece"], "swag_acc": average["accuracy"], "swag_nll": average["nll"],
               "swag_ece": average["ece"], "time": time.time() - started}
        rows.append(row)
        run.log(row)
        table.print({"#": row["sample"], "acc": row["sample_acc"], "nll": row["sample_nll"], "ece": row["sample_ece"],
                     "swag_acc": row["swag_acc"], "swag_nll": row["swag_nll"], "swag_ece": row["swag_ece"],
                     "time": row["time"]})
        run.end_epoch(draw.index + 1, keep=False)  # last.pt; a stop signal exits here for a requeue
        started = time.time()

    probs = {"SGD": baselines["sgd"], "SWA": baselines["swa"], "SWAG": ensemble.probs}
    swag_figures = ensemble.metrics(labels, args.ece_bins)
    if run.path("predictions.npz"):
        with runtime.atomic_open(run.path("predictions.npz"), "wb") as f:
            np.savez(f, swag=probs["SWAG"].astype(np.float32), swa=probs["SWA"], sgd=probs["SGD"], labels=labels)
        kind = f"rank {swag.rank}" if args.cov_mat else "diagonal"
        ensembles.plot_reliability(run.path("reliability.png"), {
            "SGD (last iterate)": probs["SGD"], f"SWA ({swag.n_models} models)": probs["SWA"],
            f"SWAG ({kind}, {args.num_samples} draws, scale {args.scale:g})": probs["SWAG"]}, labels,
            bins=args.ece_bins, title=f"{ckpt['model']} on {args.dataset}")
    if procs.is_main:
        print(f"SWAG, {args.num_samples} draws: accuracy {swag_figures['accuracy']:.2f}%, NLL "
              f"{swag_figures['nll']:.4f}, ECE {100 * swag_figures['ece']:.2f}% (SWA: {figures['swa']['accuracy']:.2f}%, "
              f"{figures['swa']['nll']:.4f}, {100 * figures['swa']['ece']:.2f}%)", flush=True)
    run.finish({**{f"{name}_{key}": value for name, m in (("swag", swag_figures), *figures.items())
                   for key, value in (("acc", m["accuracy"]), ("nll", m["nll"]), ("ece", m["ece"]))},
                "num_samples": args.num_samples, "scale": args.scale, "cov_mat": args.cov_mat,
                "swag_n": swag.n_models, "rank": swag.rank if args.cov_mat else 0,
                "sample_acc": [r["sample_acc"] for r in rows], "swag_acc_by_samples": [r["swag_acc"] for r in rows],
                "swag_nll_by_samples": [r["swag_nll"] for r in rows]})


if __name__ == "__main__":
    cli.run(main)
