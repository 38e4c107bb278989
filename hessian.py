"""The Hessian at a checkpoint: its top eigenvalues and its trace (PyHessian's estimators, Yao et al. 2020).

The Hessian of the mean cross-entropy on the first --num_images training images of the
checkpoint's split, as they are (no augmentation), the network in evaluation mode (BatchNorm's
running statistics), without the weight-decay term; with respect to all its parameters.
PyHessian's example, ResNet20 on CIFAR-10 (200 images, the top eigenvalue and the trace):

    python hessian.py --dir=runs/resnet20-hessian --ckpt=runs/resnet20/checkpoint-200.pt \
        --data_path=data --top_k=1 --trace --num_images=200

On DIGITS, `make demo`'s SGD and SWA solutions (ResNet20, noisy labels) compared:

    python hessian.py --dir=runs/demo/hessian-sgd --ckpt=runs/demo/sgd-1/checkpoint-20.pt --top_k=3 --trace
    python hessian.py --dir=runs/demo/hessian-swa --ckpt=runs/demo/swa/swa.pt --top_k=3 --trace

Eigenvalues: power iteration with deflation (at most --max_iter products each, until the
estimate changes by less than --tol relative); trace: Hutchinson's estimator with Rademacher
vectors (until the running mean changes by less than --trace_tol relative, at most
--trace_max_iter samples), with its standard error. The images go through the network in
chunks of --batch_size; the Hessian is exactly that of the mean over all of them.
Writes summary.json (eigenvalues descending, trace, trace_stderr, trace_samples), metrics.csv
(one row per eigenvalue: its iterations and whether it converged), command.sh and args.json.
"""
from __future__ import annotations

import runtime  # first: from here on SIGTERM and SIGUSR1 are remembered, not fatal (runtime.signals)

import math
import os
import sys

import torch

import cli
import data
import models
from runtime.errors import UserError
from landscape import hessian as lh


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="Top eigenvalues and trace of the Hessian of the training loss at a checkpoint.")
    cli.add_run_arguments(parser, default_dir="runs/hessian")
    cli.add_data_arguments(parser, from_checkpoint=True, label_noise=True)
    group = parser.add_argument_group("Hessian")
    group.add_argument("--ckpt", required=True, metavar="CKPT", help="a model checkpoint (or a run folder: its latest)")
    group.add_argument("--num_images", type=cli.positive_int, default=200,
                       help="the first M training images (PyHessian's example uses 200)")
    group.add_argument("--top_k", type=cli.positive_int, default=1, help="number of top eigenvalues")
    group.add_argument("--max_iter", type=cli.positive_int, default=lh.MAX_ITER,
                       help="most power iterations per eigenvalue (PyHessian's)")
    group.add_argument("--tol", type=cli.non_negative_float, default=lh.TOL,
                       help="relative change of an eigenvalue's estimate that stops its iterations (PyHessian's)")
    group.add_argument("--trace", action="store_true", help="also estimate the trace (Hutchinson)")
    group.add_argument("--trace_max_iter", type=cli.int_at_least(2, "samples"), default=lh.MAX_ITER,
                       help="most Rademacher samples of the trace (PyHessian's)")
    group.add_argument("--trace_tol", type=cli.non_negative_float, default=lh.TOL,
                       help="relative change of the trace's running mean that stops the sampling (PyHessian's)")
    group.add_argument("--recompute", action="store_true",
                       help="rebuild each chunk's gradient graph at every product instead of keeping them all: "
                            "the memory of one chunk, about 1.6x the time")
    return parser


def load(args) -> dict:
    """The checkpoint, and the flags it settles; every mistake a UserError before anything is written."""
    if args.amp:
        raise UserError("--amp: the Hessian is computed in float32 (a half precision's three or four "
                        "significant digits are coarser than the estimators' tolerance)")
    if args.compile:
        raise UserError("--compile does not apply to hessian.py (torch.func's products run eagerly)")
    args.ckpt = runtime.resolve_checkpoint_path(args.ckpt)
    ckpt = runtime.load_checkpoint(args.ckpt, kind="model")
    cli.resolve_from_checkpoint(args, ckpt, args.ckpt)  # dataset, transform, label noise
    cli.resolve_split(args, False, {args.ckpt: ckpt})  # its training images: the split it trained on
    return ckpt


def first_images(args, dataset: data.Dataset, device) -> data.Loader:
    """The first --num_images training images, plain and in order, in chunks of --batch_size."""
    if args.num_images > len(dataset.train):
        raise UserError(f"--num_images={args.num_images}: {args.dataset}'s training set "
                        f"{'with' if args.use_test else 'without'} --use_test has {len(dataset.train)} images")
    head = data.ImageSet(dataset.train.images[:args.num_images], dataset.train.labels[:args.num_images])
    mean, std = data.normalisation(args.transform, dataset.channels)
    return data.Loader(head, args.batch_size, mean, std, device=device, channels_last=args.channels_last)


def main(argv=None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    ckpt = load(args)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("hessian.py runs in one process: start it without torchrun")
    opened = cli.open_run(args, "hessian", saves=False, networks={args.ckpt: ckpt})
    if opened is None:  # finished: nothing to do
        return
    procs, run, dataset, _ = opened
    images = first_images(args, dataset, procs.device)
    model = models.model_from_checkpoint(ckpt, procs.device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    op = lh.HessianOperator(model, images, retain_graphs=not args.recompute)
    run.open_records()
    print(f"{ckpt['model']}: {op.numel} parameters; the Hessian of the mean NLL over {op.num_images} "
          f"training images, in chunks of {args.batch_size}")

    def progress(iterable, desc):
        return cli.progress(iterable, desc)

    eigen = lh.top_eigenvalues(op, op.like(), k=args.top_k, max_iter=args.max_iter, tol=args.tol,
                               seed=args.seed, progress=progress)
    table = cli.Table(["k", "eigenvalue", "iterations", "converged"], floatfmt=".6g")
    for k, e in enumerate(eigen, 1):
        row = {"k": k, "eigenvalue": e.value, "iterations": e.iterations, "converged": e.converged}
        table.print(row)
        run.log(row)
    if not all(e.converged for e in eigen):
        print(f"warning: {sum(not e.converged for e in eigen)} eigenvalue(s) did not converge within "
              f"--max_iter={args.max_iter} to --tol={args.tol:g}", file=sys.stderr)
    summary = {"eigenvalues": [e.value for e in eigen], "eigenvalue_iterations": [e.iterations for e in eigen],
               "eigenvalues_converged": all(e.converged for e in eigen),
               "num_images": op.num_images, "num_parameters": op.numel}
    if args.trace:
        # its own stream: the trace does not depend on --top_k
        trace = lh.hutchinson_trace(op, op.like(), max_iter=args.trace_max_iter, tol=args.trace_tol,
                                    seed=torch.Generator().manual_seed(args.seed + 1_000_003), progress=progress)
        print(f"trace {trace.estimate:.6g} +- {trace.stderr:.3g} (standard error, {len(trace.samples)} "
              f"Rademacher samples{'' if trace.converged else ', not converged'})")
        summary.update(trace=trace.estimate, trace_stderr=None if math.isnan(trace.stderr) else trace.stderr,
                       trace_samples=len(trace.samples), trace_converged=trace.converged)
    run.finish(summary)


if __name__ == "__main__":
    cli.run(main)
