"""Datasets as in-memory uint8 tensors, and a batch loader that augments on the device.

One module, though long: the four readers (CIFAR's batches, the idx files, DIGITS, the split and the
label noise) share the one tensor layout the loader takes, and the scripts import only this file.

A dataset is loaded once into ``(N, C, H, W)`` uint8 images and ``(N,)`` int64
labels. ``Loader`` draws each epoch's order, crop offsets and flips with a few
tensor calls and cuts the epoch's crops out of the padded images with one
``index_select`` per distinct (crop, flip), on whatever device the tensors live
on: no DataLoader, no PIL, no per-image Python.

Datasets:
- ``CIFAR10`` / ``CIFAR100``: the python-version batches, read from
  ``<data_path>/cifar10/cifar-10-batches-py/`` (the original code's layout),
  ``<data_path>/cifar-10-batches-py/`` or ``<data_path>/`` itself (likewise
  ``cifar100`` / ``cifar-100-python``). Files that are present are read without
  checksum checks; missing ones are downloaded with torchvision if the network
  allows. Augmentation: zero padding 4, random 32x32 crop, horizontal flip.
- ``FashionMNIST`` / ``MNIST``: the four idx files (``train-images-idx3-ubyte`` and the rest, gzipped
  or not), read from ``<data_path>/`` itself if they are there, else from Debian's folder
  (``/usr/share/datasets/fashion-mnist/``, package ``dataset-fashion-mnist``; Debian has none for
  MNIST), else from torchvision's layout ``<data_path>/FashionMNIST/raw/`` (``MNIST/raw/``), and
  downloaded there with torchvision as the last resort. 60000 training and 10000 test images, 28x28,
  1 channel. Augmentation, the 28x28 counterpart of CIFAR's: zero padding 2 and a random 28x28 crop
  (shifts of up to 2 pixels, a 14th of the side, where CIFAR's 4 are an 8th: the centred objects
  fill the frame); Fashion-MNIST also flips horizontally (clothes are mirror-symmetric), MNIST does
  not (a mirrored digit is another symbol). Normalisation: --transform's rule for one channel (the
  channel average of its constants), as for DIGITS.
- ``DIGITS``: scikit-learn's bundled 8x8 digits (1797 images, 1 channel, pixel
  values 0..16 scaled to 0..255). Split: the images are shuffled once with
  ``numpy.random.RandomState(0)``; the last 360 are the test set, the first 1437
  the training set. No augmentation, only shuffling: a mirrored digit is another
  symbol, and a one-pixel shift is an eighth of the image (with it, ConvFC's
  20-epoch test accuracy fell from about 98.5% to 97%). The default batch size
  is 32 (``default_batch_size``): at 128, 1437 images give too few steps an epoch.

Validation: without ``use_test`` the last ``validation_size`` training images
(5000 for CIFAR, 360 for DIGITS, the size of its test set) are the evaluation
set and training uses the rest.

Label noise (``label_noise``, learning-subspaces' rule): a fraction of the training
labels is replaced by uniformly random ones (``noisy_labels``). Only the images that
train are noised, after the split: evaluation labels, test or validation, never are.

This module is long (about 560 lines) because the project's brief keeps the datasets and their
loader in one file at the top, ``data.py``, as the original code has them: the readers (DIGITS,
CIFAR's batches, the idx files) come first, then the splits and label noise, then ``Loader``.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
import shutil
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from runtime.errors import UserError

DATASETS = ("CIFAR10", "CIFAR100", "DIGITS", "FashionMNIST", "MNIST")

# Normalisation constants of the papers' code, per --transform.
NORMALISATIONS = {
    "VGG": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "ResNet": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
}

_CIFAR = {
    # name: (folder under data_path, folder torchvision extracts to, train files, test files, label key)
    "CIFAR10": ("cifar10", "cifar-10-batches-py",
                [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"),
    "CIFAR100": ("cifar100", "cifar-100-python", ["train"], ["test"], "fine_labels"),
}
_NUM_CLASSES = {"CIFAR10": 10, "CIFAR100": 100, "DIGITS": 10, "FashionMNIST": 10, "MNIST": 10}

# The idx files of Fashion-MNIST and MNIST (the same names for both), each read as NAME or NAME.gz.
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IDX_IMAGES, IDX_LABELS = 2051, 2049  # the magic numbers: unsigned bytes, 3 dimensions or 1
# Where Debian's packages install them (dataset-fashion-mnist; there is no MNIST package).
DEBIAN_FOLDERS = {"FashionMNIST": "/usr/share/datasets/fashion-mnist"}
DEBIAN_PACKAGES = {"FashionMNIST": "dataset-fashion-mnist"}
# (zero padding of the random crop, horizontal flips) per dataset: see the module docstring
AUGMENTATION = {"CIFAR10": (4, True), "CIFAR100": (4, True), "DIGITS": (0, False),
                "FashionMNIST": (2, True), "MNIST": (2, False)}


def default_batch_size(name: str) -> int:
    """128, the papers' batch size (CIFAR, Fashion-MNIST, MNIST); 32 for the small DIGITS set."""
    return 32 if name == "DIGITS" else 128


@dataclass
class ImageSet:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    """A training set, an evaluation set (test or validation) and how to augment."""

    name: str
    train: ImageSet
    test: ImageSet
    num_classes: int
    use_test: bool
    padding: int  # zero padding before the random crop
    flip: bool  # random horizontal flips

    @property
    def channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def size(self) -> int:
        return self.train.images.shape[-1]


def load_dataset(name: str, data_path: str = "data", use_test: bool = False,
                 download: bool = True, label_noise: float = 0.0, noise_seed: int = 0,
                 augment: bool = True) -> Dataset:
    """Load ``name`` into memory and split it as described in the module docstring; with
    ``label_noise`` that fraction of the training labels is random (``noisy_labels``); without
    ``augment`` the training images are used as they are (no crops, no flips)."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")
    padding, flip = AUGMENTATION[name] if augment else (0, False)
    if name == "DIGITS":
        train, test = _load_digits()
        validation_size = 360
    elif name in _CIFAR:
        train, test = _load_cifar(name, data_path, download)
        validation_size = 5000
    else:
        train, test = _load_idx_dataset(name, data_path, download)
        validation_size = 5000
    if not use_test:
        if len(train) <= validation_size:
            raise UserError(f"{name} has {len(train)} training images, too few to hold out "
                            f"{validation_size} for validation: use --use_test")
        cut = len(train) - validation_size
        train, test = (ImageSet(train.images[:cut], train.labels[:cut]),
                       ImageSet(train.images[cut:], train.labels[cut:]))
    if label_noise:
        train = ImageSet(train.images, noisy_labels(train.labels, label_noise, _NUM_CLASSES[name], noise_seed))
    return Dataset(name, train, test, _NUM_CLASSES[name], use_test, padding, flip)


def noisy_labels(labels: torch.Tensor, fraction: float, num_classes: int, seed: int = 0) -> torch.Tensor:
    """``labels`` with the first int(n * fraction) images of a random permutation given a uniformly
    random label (which may be the old one), as learning-subspaces' data/cifar.py does.

    The draws are its own, in its order: a permutation, then n labels, from numpy's generator
    seeded with ``seed``. Seed 0 gives its saved cifar.npy and cifar_labels.npy (the files
    every run of it shares) for CIFAR-10's 50000 images.
    """
    if not 0.0 <= fraction <= 1.0:
        raise UserError(f"--label_noise={fraction} is not a fraction in [0, 1]")
    n = len(labels)
    rng = np.random.RandomState(seed)
    order = rng.permutation(n)
    random_labels = rng.randint(num_classes, size=(n,))
    chosen = order[:int(n * fraction)]
    noisy = labels.clone()
    noisy[torch.from_numpy(chosen)] = torch.from_numpy(random_labels[:len(chosen)]).to(labels.dtype)
    return noisy


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's DIGITS: images (1797, 8, 8) of values 0..16 and their labels.

    Read straight from the CSV that scikit-learn ships (64 pixels and the label a row, what its
    load_digits reads): importing sklearn.datasets costs more than a demo run's training epoch.
    """
    spec = importlib.util.find_spec("sklearn")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz") if spec else ""
    if not os.path.isfile(path):  # an unusual installation: let scikit-learn find it (or say it is missing)
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    rows = np.loadtxt(path, delimiter=",", dtype=np.int64)
    return rows[:, :-1].reshape(-1, 8, 8), rows[:, -1]


def _load_digits() -> tuple[ImageSet, ImageSet]:
    pixels, targets = _digits_arrays()
    images = np.rint(pixels * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    order = np.random.RandomState(0).permutation(len(images))
    images, labels = torch.from_numpy(images[order]), torch.from_numpy(targets[order]).long()
    cut = len(images) - 360
    return ImageSet(images[:cut], labels[:cut]), ImageSet(images[cut:], labels[cut:])


def cifar_candidate_dirs(name: str, data_path: str) -> list[str]:
    """The folders searched for ``name``'s batch files, in order."""
    sub, extracted = _CIFAR[name][:2]
    return [os.path.join(data_path, sub, extracted), os.path.join(data_path, extracted),
            os.path.join(data_path, sub), data_path]


def _find_cifar(name: str, data_path: str) -> str | None:
    files = _CIFAR[name][2] + _CIFAR[name][3]
    for folder in cifar_candidate_dirs(name, data_path):
        if all(os.path.isfile(os.path.join(folder, f)) for f in files):
            return folder
    return None


def _load_cifar(name: str, data_path: str, download: bool) -> tuple[ImageSet, ImageSet]:
    folder = _find_cifar(name, data_path)
    if folder is None and download:
        _download_cifar(name, data_path)
        folder = _find_cifar(name, data_path)
    if folder is None:
        looked = ", ".join(cifar_candidate_dirs(name, data_path))
        raise UserError(f"{name} not found: looked for its python batch files in {looked}")
    _, _, train_files, test_files, label_key = _CIFAR[name]
    return (_read_batches(folder, train_files, label_key),
            _read_batches(folder, test_files, label_key))


def _download_cifar(name: str, data_path: str) -> None:
    import torchvision

    root = os.path.join(data_path, _CIFAR[name][0])
    dataset_class = getattr(torchvision.datasets, name)  # name is one of _CIFAR's keys
    made = [d for d in (data_path, root) if not os.path.exists(d)]  # removed again if the download fails
    try:
        dataset_class(root=root, train=True, download=True)
    except Exception as exc:  # no network, disk full, ...: report where we looked instead
        for folder in reversed(made):
            shutil.rmtree(folder, ignore_errors=True)
        looked = ", ".join(cifar_candidate_dirs(name, data_path))
        raise UserError(f"{name} not found in {looked}, and the download failed "
                        f"({type(exc).__name__}: {exc})") from exc


def _read_batches(folder: str, files: list[str], label_key: str) -> ImageSet:
    images, labels = [], []
    for file in files:
        path = os.path.join(folder, file)
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="latin1")
            batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
            images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[label_key], dtype=np.int64))
        except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError, AttributeError) as exc:
            raise UserError(f"cannot read CIFAR batch {path}: {type(exc).__name__}: {exc}") from exc
    return ImageSet(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)))


def write_random_cifar(folder: str, name: str, train_images: int, test_images: int, seed: int = 0) -> str:
    """Random images in ``name``'s python-batch format, written into ``folder``: the
    tests' and the benchmark's stand-in for CIFAR, which cannot be downloaded everywhere.
    The training images are split over the official training files."""
    _, _, train_files, test_files, label_key = _CIFAR[name]
    rng = np.random.RandomState(seed)
    sizes = [len(part) for part in np.array_split(np.arange(train_images), len(train_files))] + [test_images]
    os.makedirs(folder, exist_ok=True)
    for file, n in zip(train_files + test_files, sizes):
        batch = {"data": rng.randint(0, 256, (n, 3072), dtype=np.uint8),
                 label_key: rng.randint(0, _NUM_CLASSES[name], n).tolist(), "batch_label": file}
        with open(os.path.join(folder, file), "wb") as f:
            pickle.dump(batch, f)
    return folder


def idx_candidate_dirs(name: str, data_path: str) -> list[str]:
    """The folders searched for ``name``'s idx files, in order (see the module docstring)."""
    debian = [DEBIAN_FOLDERS[name]] if name in DEBIAN_FOLDERS else []
    return [data_path] + debian + [os.path.join(data_path, name, "raw")]


def _idx_path(folder: str, file: str) -> str | None:
    """The file as stored in ``folder``: uncompressed, else gzipped (torchvision keeps both)."""
    for path in (os.path.join(folder, file), os.path.join(folder, file + ".gz")):
        if os.path.isfile(path):
            return path
    return None


def _find_idx(name: str, data_path: str) -> str | None:
    files = IDX_FILES["train"] + IDX_FILES["test"]
    for folder in idx_candidate_dirs(name, data_path):
        if all(_idx_path(folder, f) for f in files):
            return folder
    return None


def _load_idx_dataset(name: str, data_path: str, download: bool) -> tuple[ImageSet, ImageSet]:
    folder = _find_idx(name, data_path)
    failure = ""
    if folder is None and download:
        failure = _download_idx(name, data_path)
        folder = _find_idx(name, data_path)
    if folder is None:
        looked = ", ".join(idx_candidate_dirs(name, data_path))
        files = "{" + ", ".join(IDX_FILES["train"] + IDX_FILES["test"]) + "}[.gz]"
        package = (f"install Debian's package {DEBIAN_PACKAGES[name]} (apt-get install {DEBIAN_PACKAGES[name]}), "
                   if name in DEBIAN_PACKAGES else "")
        raise UserError(f"{name} not found: looked for its idx files {files} in {looked}; {package}put the four "
                        f"files in --data_path, or let torchvision download them into {data_path}/{name}/raw/"
                        + (f" (the download failed: {failure})" if failure else " (not tried)"))
    return tuple(_read_idx_set(_idx_path(folder, images), _idx_path(folder, labels), _NUM_CLASSES[name])
                 for images, labels in (IDX_FILES["train"], IDX_FILES["test"]))


def _download_idx(name: str, data_path: str) -> str:
    """torchvision's download into ``<data_path>/<name>/raw/``; '' if it worked, else why not
    (the folders it made are removed again, as a failed CIFAR download's)."""
    import torchvision

    dataset_class = getattr(torchvision.datasets, name)  # name is FashionMNIST or MNIST
    made = [d for d in (data_path, os.path.join(data_path, name), os.path.join(data_path, name, "raw"))
            if not os.path.exists(d)]
    try:
        dataset_class(root=data_path, train=True, download=True)
    except Exception as exc:  # no network, disk full, ...: the error says where we looked instead
        for folder in reversed(made):
            shutil.rmtree(folder, ignore_errors=True)
        text = " ".join(str(exc).split())  # torchvision's message spans lines, one per mirror tried
        return f"{type(exc).__name__}: {text if len(text) <= 240 else text[:240] + ' ...'}"
    return ""


def read_idx(path: str) -> np.ndarray:
    """An idx file of unsigned bytes (gzipped or not) as an array of its shape; anything else,
    or a file whose size disagrees with its header, is a UserError naming the file.

    The format: a big-endian int32 magic number 0x0000080D (0x08: unsigned bytes, D the number of
    dimensions), D big-endian int32 sizes, then the values in row-major order.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":  # gzip's magic bytes, whatever the file is called
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"cannot read idx file {path}: {type(exc).__name__}: {exc}") from exc
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic is None or magic >> 8 != 0x08 or not 1 <= magic & 0xFF <= 3:
        raise UserError(f"{path} is not an idx file of unsigned bytes (magic number {magic}, not "
                        f"{IDX_IMAGES} for images or {IDX_LABELS} for labels)")
    dims = magic & 0xFF
    header = 4 + 4 * dims
    if len(raw) < header:
        raise UserError(f"{path} is truncated: {len(raw)} bytes, shorter than its header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        raise UserError(f"{path} holds {len(raw)} bytes, but its header ({'x'.join(map(str, shape))} values) "
                        f"says {expected}: {'truncated' if len(raw) < expected else 'trailing bytes'}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_idx_set(images_path: str, labels_path: str, num_classes: int) -> ImageSet:
    """(N, 1, H, H) uint8 images (magic number 2051) and their (N,) int64 labels (2049), in 0..classes - 1."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise UserError(f"{images_path} does not hold square images (magic number {IDX_IMAGES}, N x H x H): "
                        f"its shape is {'x'.join(map(str, images.shape))}")
    if labels.ndim != 1:
        raise UserError(f"{labels_path} does not hold labels (magic number {IDX_LABELS}, one dimension): its "
                        f"shape is {'x'.join(map(str, labels.shape))}")
    if len(labels) != len(images):
        raise UserError(f"{labels_path} has {len(labels)} labels for the {len(images)} images of {images_path}")
    if len(labels) and int(labels.max()) >= num_classes:
        raise UserError(f"{labels_path} has label {int(labels.max())}, outside 0..{num_classes - 1}")
    return ImageSet(torch.from_numpy(images[:, None].copy()), torch.from_numpy(labels.astype(np.int64)))


def write_idx(path: str, values: np.ndarray) -> str:
    """``values`` (uint8, 1 to 3 dimensions) as an idx file, gzipped if ``path`` ends in .gz:
    the benchmark's stand-in for Fashion-MNIST where Debian's package is not installed."""
    values = np.ascontiguousarray(values, dtype=np.uint8)
    raw = (0x0800 + values.ndim).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in values.shape)
    raw += values.tobytes()
    with open(path, "wb") as f:
        f.write(gzip.compress(raw, compresslevel=1) if path.endswith(".gz") else raw)
    return path


def normalisation(transform: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of ``--transform``; single-channel data use the channel average."""
    if transform not in NORMALISATIONS:
        raise UserError(f"unknown transform {transform!r} (choose from {', '.join(NORMALISATIONS)})")
    mean, std = NORMALISATIONS[transform]
    if channels == 1:
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    return mean, std


class Loader:
    """Mini-batches ``(x, y)`` of an ImageSet, normalised floats on ``device``.

    With ``shuffle`` the order is a fresh permutation each epoch; with ``augment``
    every image gets its own random crop offset (after zero padding) and, if
    ``flip``, a coin flip for mirroring. The randomness of epoch ``e`` comes from
    a generator seeded with ``(seed, e)``, so a resumed run sees the same batches
    as an uninterrupted one. Call ``set_epoch`` before iterating, as with
    ``DistributedSampler``. An augmented epoch holds one uint8 copy of its crops
    on the device (150 MB for CIFAR's 50000 images).

    Data parallelism: with ``world_size`` processes, ``batch_size`` is the global
    batch. Every process draws the same epoch (the generator does not depend on the
    rank) and takes its contiguous share of each global batch (``shard``), so the
    processes together see the batches a single process sees, image for image and
    crop for crop.
    """

    def __init__(self, data: ImageSet, batch_size: int, mean, std, *, device="cpu",
                 shuffle=False, augment=False, padding=0, flip=False, seed=0,
                 channels_last=False, rank=0, world_size=1):
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.augment, self.padding, self.flip = shuffle, augment, padding, flip
        self.seed, self.epoch = seed, 0
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.labels = data.labels.to(self.device)
        images = data.images.to(self.device)
        self.size = images.shape[-1]
        # Padding happens once here, in uint8: padded pixels are black, and so become
        # (0 - mean) / std after normalisation, exactly as RandomCrop(padding=4) + Normalize.
        self.images = torch.nn.functional.pad(images, [padding] * 4) if augment else images
        channels = images.shape[1]
        std_t = torch.tensor(std, device=self.device).view(1, channels, 1, 1)
        mean_t = torch.tensor(mean, device=self.device).view(1, channels, 1, 1)
        self.scale, self.shift = 1.0 / (255.0 * std_t), -mean_t / std_t  # (x/255 - mean) / std

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batch_size(self, step: int) -> int:
        """The number of images in batch ``step`` summed over all processes (the last one may be short)."""
        return min(self.batch_size, len(self.labels) - step * self.batch_size)

    def shard(self, size: int) -> tuple[int, int]:
        """This process's slice [lo, hi) of a global batch of ``size`` images: torch.tensor_split's
        rule, the first ``size % world_size`` processes one image more than the others."""
        q, extra = divmod(size, self.world_size)
        lo = self.rank * q + min(self.rank, extra)
        return lo, lo + q + (self.rank < extra)

    def local_positions(self) -> torch.Tensor:
        """The positions in the epoch's order of the images this process gets, in the order it gets them."""
        parts = []
        for step in range(len(self)):
            lo, hi = self.shard(self.global_batch_size(step))
            parts.append(torch.arange(lo, hi) + step * self.batch_size)
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)

    def _draws(self):
        """This epoch's permutation, crop offsets and flips (per image id), on the device."""
        to = lambda t: None if t is None else t.to(self.device, non_blocking=True)  # noqa: E731
        return tuple(to(t) for t in self._cpu_draws())

    def _cpu_draws(self):
        """The same draws on the CPU, where the generator lives: the same batches on any device."""
        n = len(self.labels)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        if not self.augment:
            return order, None, None
        offsets = torch.randint(0, 2 * self.padding + 1, (2, n), generator=g)
        flips = torch.rand(n, generator=g) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        return order, offsets, flips

    def _crops(self, order, offsets, flips):
        """The epoch's augmented images ``(N, C, H, W)`` uint8, grouped by crop, and each position's row.

        A per-pixel gather (one index per output element) runs at about 25k images/s on
        a CPU core. Instead the positions are sorted by their (dy, dx, flip), at most
        (2 * padding + 1)^2 * 2 groups, and each group is cut out with one
        ``index_select`` of a shifted view: whole rows are copied, about 10x faster.
        Position k of the epoch is row ``row[k]`` of the result. The grouping is
        done on the CPU (the draws live there), so it costs no device sync.
        """
        span = 2 * self.padding + 1
        key = (offsets[0, order] * span + offsets[1, order]) * 2 + flips[order].long()  # per position
        by_key = key.argsort(stable=True)
        counts = torch.bincount(key, minlength=span * span * 2).tolist()
        row = torch.empty_like(by_key)
        row[by_key] = torch.arange(len(by_key))
        sources = order[by_key].to(self.device, non_blocking=True)
        crops = torch.empty((len(order),) + self.images.shape[1:2] + (self.size, self.size),
                            dtype=self.images.dtype, device=self.device)
        start = 0
        for k, count in enumerate(counts):
            if count == 0:
                continue
            (dy, dx), flip = divmod(k // 2, span), k % 2
            rows = crops[start:start + count]
            shifted = self.images[:, :, dy:dy + self.size, dx:dx + self.size]
            torch.index_select(shifted, 0, sources[start:start + count], out=rows)
            if flip:
                rows.copy_(rows.flip(-1))
            start += count
        return crops, row.to(self.device, non_blocking=True)

    def __iter__(self):
        return self.batches()

    def batches(self, start_step: int = 0):
        """The epoch's batches from ``start_step`` on (a run resumed within an epoch skips the others)."""
        order, offsets, flips = self._cpu_draws()
        crops, row = self._crops(order, offsets, flips) if self.augment else (None, None)
        order = order.to(self.device, non_blocking=True)
        for step in range(start_step, len(self)):
            lo, hi = self.shard(self.global_batch_size(step))
            start, end = step * self.batch_size + lo, step * self.batch_size + hi
            idx = order[start:end]
            if crops is not None:
                x = crops.index_select(0, row[start:end])
            elif self.shuffle:
                x = self.images.index_select(0, idx)
            else:
                x = self.images[start:end]
            x = x.float().mul_(self.scale).add_(self.shift)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]


def make_loaders(data: Dataset, batch_size: int, transform: str, *, device="cpu", seed=0,
                 channels_last=False, eval_batch_size: int | None = None, rank: int = 0,
                 world_size: int = 1) -> dict[str, Loader]:
    """The loaders of ``data``'s images:

    - ``train``: shuffled and augmented, for training;
    - ``train_augmented``: augmented but in order, in batches of ``batch_size``: the original
      code's ``loaders['train']`` with ``shuffle_train=False``, which its curve and plane
      evaluation use for the BatchNorm update and the train loss (call ``set_epoch`` for
      fresh augmentation draws);
    - ``train_eval``: the training images plain, in order;
    - ``test``: the evaluation images (test or validation), plain, in order.

    With ``world_size`` processes every loader gives this process its share of each
    global batch; ``test``'s global batch is then ``eval_batch_size`` per process, as an
    evaluation's results do not depend on how it is batched (a BatchNorm update's do).
    """
    mean, std = normalisation(transform, data.channels)
    eval_batch_size = eval_batch_size or batch_size
    common = dict(mean=mean, std=std, device=device, channels_last=channels_last, rank=rank,
                  world_size=world_size)
    augment = dict(augment=data.padding > 0 or data.flip, padding=data.padding, flip=data.flip, seed=seed)
    return {
        "train": Loader(data.train, batch_size, shuffle=True, **augment, **common),
        "train_augmented": Loader(data.train, batch_size, **augment, **common),
        "train_eval": Loader(data.train, eval_batch_size, **common),
        "test": Loader(data.test, eval_batch_size * world_size, **common),
    }
