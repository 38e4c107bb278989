"""data.py: loading, splits, normalisation, and augmentation against a per-image computation."""
import os

import numpy as np
import pytest
import torch

import data
from conftest import TEST_IMAGES, TRAIN_PER_BATCH, write_cifar
from runtime.errors import UserError


def test_digits_split_and_shapes():
    full = data.load_dataset("DIGITS", use_test=True)
    assert (len(full.train), len(full.test)) == (1437, 360)
    assert full.train.images.dtype == torch.uint8 and full.train.images.shape[1:] == (1, 8, 8)
    assert (full.channels, full.size, full.num_classes) == (1, 8, 10)
    assert int(full.train.images.max()) == 255  # 16 -> 255
    held_out = data.load_dataset("DIGITS", use_test=False)
    assert (len(held_out.train), len(held_out.test)) == (1077, 360)
    # the validation set is the last 360 training images, never the test images
    assert torch.equal(held_out.test.images, full.train.images[-360:])
    assert torch.equal(held_out.train.labels, full.train.labels[:-360])


def test_digits_are_scikit_learns_load_digits():
    """Read from scikit-learn's CSV directly: the same images and labels as its load_digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels, targets = data._digits_arrays()
    assert np.array_equal(pixels, digits.images) and np.array_equal(targets, digits.target)
    full = data.load_dataset("DIGITS", use_test=True)
    order = np.random.RandomState(0).permutation(1797)  # the fixed shuffle before the 360 test images
    assert torch.equal(full.test.labels, torch.from_numpy(digits.target[order[-360:]]).long())
    assert torch.equal(full.train.images[0, 0], torch.from_numpy(np.rint(digits.images[order[0]] * 255 / 16)).to(torch.uint8))


@pytest.mark.parametrize("name,classes", [("CIFAR10", 10), ("CIFAR100", 100)])
def test_cifar_from_python_batches(cifar_root, name, classes):
    test = data.load_dataset(name, cifar_root, use_test=True)
    assert test.train.images.shape == (5 * TRAIN_PER_BATCH, 3, 32, 32)
    assert test.test.images.shape == (TEST_IMAGES, 3, 32, 32)
    assert test.num_classes == classes and int(test.train.labels.max()) < classes
    val = data.load_dataset(name, cifar_root, use_test=False)
    assert len(val.train) == 5 * TRAIN_PER_BATCH - 5000 and len(val.test) == 5000
    assert torch.equal(val.test.images, test.train.images[-5000:])


def test_cifar_rows_are_channel_planes(tmp_path):
    """A CIFAR row holds 1024 red, then 1024 green, then 1024 blue values, row-major."""
    root = write_cifar(str(tmp_path), "CIFAR10")
    import pickle
    folder = os.path.join(root, "cifar10", "cifar-10-batches-py")
    with open(os.path.join(folder, "data_batch_1"), "rb") as f:
        raw = pickle.load(f)["data"][0]
    image = data.load_dataset("CIFAR10", root, use_test=True).train.images[0]
    assert image[1, 2, 3] == raw[1024 + 2 * 32 + 3]


def test_cifar_flat_layout_and_missing_error(tmp_path):
    root = write_cifar(str(tmp_path / "nested"), "CIFAR10")
    flat = tmp_path / "flat"
    os.rename(os.path.join(root, "cifar10", "cifar-10-batches-py"), flat)  # files right under data_path
    assert len(data.load_dataset("CIFAR10", str(flat), use_test=True).test) == TEST_IMAGES
    with pytest.raises(UserError, match="looked"):
        data.load_dataset("CIFAR100", str(tmp_path / "empty"), use_test=True, download=False)


def test_normalisation_constants():
    mean, std = data.normalisation("ResNet", 3)
    assert mean == (0.4914, 0.4822, 0.4465) and std == (0.2023, 0.1994, 0.2010)
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    loader = data.Loader(data.ImageSet(images, torch.arange(5)), 5, *data.normalisation("VGG", 3))
    x, y = next(iter(loader))
    expected = (images.float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) \
        / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    torch.testing.assert_close(x, expected)
    assert torch.equal(y, torch.arange(5))


def _reference_augment(image: torch.Tensor, dy: int, dx: int, flip: bool, padding: int) -> torch.Tensor:
    """RandomCrop(padding) + RandomHorizontalFlip on one image, written out directly."""
    c, h, w = image.shape
    padded = torch.zeros(c, h + 2 * padding, w + 2 * padding, dtype=image.dtype)
    padded[:, padding:padding + h, padding:padding + w] = image
    crop = padded[:, dy:dy + h, dx:dx + w]
    return crop.flip(-1) if flip else crop


def test_augmentation_matches_per_image_crop_and_flip():
    n, padding = 37, 4
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(n)
    mean, std = (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255)  # identity normalisation
    loader = data.Loader(data.ImageSet(images, labels), 8, mean, std, shuffle=True, augment=True,
                         padding=padding, flip=True, seed=3)
    loader.set_epoch(5)
    order, offsets, flips = loader._draws()
    batches = list(loader)
    assert [len(y) for _, y in batches] == [8, 8, 8, 8, 5]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert torch.equal(y, order)  # labels travel with their images
    assert sorted(y.tolist()) == list(range(n))
    assert 0 < int(flips.sum()) < n and offsets.min() >= 0 and offsets.max() <= 2 * padding
    for k, i in enumerate(order.tolist()):
        expected = _reference_augment(images[i], int(offsets[0, i]), int(offsets[1, i]), bool(flips[i]), padding)
        assert torch.equal(x[k], expected.float()), k


def test_epochs_differ_and_repeat():
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    loader = data.Loader(data.ImageSet(images, torch.arange(20)), 20, (0.5,) * 3, (0.5,) * 3,
                         shuffle=True, augment=True, padding=4, flip=True, seed=0)
    first = [next(iter(loader))[0] for _ in range(2)]
    loader.set_epoch(1)
    second = next(iter(loader))[0]
    assert torch.equal(first[0], first[1])  # same epoch, same draws: resume sees the same batches
    assert not torch.equal(first[0], second)


def test_make_loaders_evaluation_is_plain():
    dataset = data.load_dataset("DIGITS", use_test=True)
    loaders = data.make_loaders(dataset, 64, "VGG", eval_batch_size=100)
    x, y = next(iter(loaders["train_eval"]))
    assert x.shape == (100, 1, 8, 8) and torch.equal(y, dataset.train.labels[:100])
    assert len(loaders["train"]) == int(np.ceil(1437 / 64))
    assert sum(len(y) for _, y in loaders["test"]) == 360


# --------------------------------------------------------------------------- label noise

def _noised_independently(labels: np.ndarray, fraction: float, classes: int, seed: int) -> np.ndarray:
    """learning-subspaces' data/cifar.py, written out: a permutation, then n random labels, and
    ``targets[perm[k]] = labels[k]`` for k < int(n * fraction), one image at a time."""
    rng = np.random.RandomState(seed)  # what np.random.seed(seed) seeds, without touching the global state
    perm, random_labels = rng.permutation(len(labels)), rng.randint(classes, size=(len(labels),))
    out = labels.copy()
    for k in range(int(len(labels) * fraction)):
        out[perm[k]] = random_labels[k]
    return out


@pytest.mark.parametrize("fraction,seed", [(0.2, 0), (0.4, 3), (0.0, 0), (1.0, 1)])
def test_label_noise_is_learning_subspaces_rule(fraction, seed):
    clean = data.load_dataset("DIGITS", use_test=True)
    noisy = data.load_dataset("DIGITS", use_test=True, label_noise=fraction, noise_seed=seed)
    expected = _noised_independently(clean.train.labels.numpy(), fraction, 10, seed)
    assert np.array_equal(noisy.train.labels.numpy(), expected)
    assert torch.equal(noisy.train.images, clean.train.images)
    assert torch.equal(noisy.test.labels, clean.test.labels)  # evaluation labels are never touched
    # int(n * fraction) images get a random label; about a tenth of those draw their own label again
    changed = int((noisy.train.labels != clean.train.labels).sum())
    drawn = int(len(clean.train) * fraction)
    assert changed <= drawn and (drawn == 0 or changed >= 0.8 * drawn)


def test_label_noise_seed_0_is_learning_subspaces_saved_draw():
    """Its cifar.npy and cifar_labels.npy (50000 entries, shared by all its runs) begin so."""
    rng = np.random.RandomState(0)
    assert rng.permutation(50000)[:10].tolist() == [11841, 19602, 45519, 25747, 42642, 31902, 30346, 12363, 32490,
                                                    26128]
    assert rng.randint(10, size=(50000,))[:10].tolist() == [6, 7, 2, 1, 8, 6, 8, 5, 3, 8]
    labels = torch.zeros(50000, dtype=torch.long)
    noisy = data.noisy_labels(labels, 0.2, 10, seed=0)
    assert noisy[11841] == 6 and noisy[19602] == 7 and noisy[26128] == 8  # the first ten drawn images


def test_label_noise_spares_the_validation_split_and_is_deterministic():
    held_out = data.load_dataset("DIGITS", use_test=False)
    a = data.load_dataset("DIGITS", use_test=False, label_noise=0.4, noise_seed=2)
    b = data.load_dataset("DIGITS", use_test=False, label_noise=0.4, noise_seed=2)
    c = data.load_dataset("DIGITS", use_test=False, label_noise=0.4, noise_seed=3)
    assert torch.equal(a.test.labels, held_out.test.labels)  # the last 360 training images: never noised
    assert torch.equal(a.train.labels, b.train.labels) and not torch.equal(a.train.labels, c.train.labels)
    assert int((a.train.labels != held_out.train.labels).sum()) > 0
    with pytest.raises(UserError):
        data.noisy_labels(held_out.train.labels, 1.5, 10)
