"""The speed figures of scripts/bench.py: each a ratio of two timings taken side by side in one run.

    python scripts/bench.py --quick --out runs/bench.json    # under 5 minutes on a 2-core CPU
    python scripts/bench.py --out runs/bench.json            # a CIFAR-10-sized epoch, more repeats
    python scripts/bench.py --only fashion --out runs/fashion-bench.json   # one figure
    python scripts/bench.py --device cuda --quick --out runs/gpu-bench.json   # with the epoch figures

The baseline is the original code's approach: torchvision's CIFAR10 dataset with
PIL transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
Normalize) in a torch DataLoader (the best of 0 and 2 workers on a CPU; 4, the original's
default, for a GPU's epochs), fp32, a ``.item()`` per step. Ours: data.Loader (the batch pipeline on the device),
utils.train_epoch / update_bn / evaluate and the fastest options (``--amp
--channels_last``). The data are random CIFAR-shaped python batches the bench
writes itself: nothing is downloaded. The Fashion-MNIST epoch (the model of
scripts/fashion_tables.sh) reads Debian's dataset-fashion-mnist where it is installed (both sides
the same files), random idx files of its shape where not: torchvision's FashionMNIST with
RandomCrop(28, padding=2), RandomHorizontalFlip, ToTensor and Normalize against ours.

Timing: the contenders of a figure run interleaved (A, B, A, B, ...), so that a
change in the machine's load hits both; each is warmed up once (not timed),
bracketed by device synchronisation, and its best repeat is kept. The
overheads of a few percent (curve, line, simplex against a plain step) are the
median over rounds of the ratio within each round (``paired_ratio``).

Memory: the low-rank SWAG of WideResNet28x10 (``bench_swag_memory``), in copies of its weights.

The modules: timing (interleaved races, paired ratios, FLOPs), reference (the original approach),
machine (which CPU and ISA, how busy), and the figures: compute (matmul peak, VGG16 steps on
curves, lines and simplexes, the Hessian-vector product), pipelines (the batch pipeline, ConvFC's
training, the Fashion-MNIST epoch), curve_point, processes (data parallelism, SWAG's memory),
matching (weight matching), epochs (for a GPU: PreResNet164's and WideResNet28x10's CIFAR epochs,
FGE's and SWA's epochs); main holds the sizes, the goals and the command line.
"""
