"""Fashion-MNIST and MNIST from their idx files: the reader against torchvision's reading of the same
files (tiny ones written here, gzipped and not, and Debian's real package where it is installed),
the folders searched in order, the augmentation, and bad input."""
import gzip
import json
import os
import shutil
import struct

import numpy as np
import pytest
import torch

import data
from conftest import user_error
from runtime.errors import UserError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEBIAN = "/usr/share/datasets/fashion-mnist"


def idx_bytes(values: np.ndarray) -> bytes:
    """The idx format written out: two zero bytes, 0x08 (unsigned bytes), the number of dimensions,
    each size as a big-endian int32, then the values row-major."""
    return struct.pack(">BBBB", 0, 0, 0x08, values.ndim) + struct.pack(f">{values.ndim}I", *values.shape) + \
        values.astype(np.uint8).tobytes()


def tiny_arrays(seed: int = 0, train: int = 12, test: int = 5) -> list[np.ndarray]:
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 256, (train, 28, 28)), rng.randint(0, 10, train),
            rng.randint(0, 256, (test, 28, 28)), rng.randint(0, 10, test)]


def write_files(folder, arrays, gzipped: bool) -> str:
    os.makedirs(folder, exist_ok=True)
    for name, values in zip(FILES, arrays):
        raw = idx_bytes(values)
        path = os.path.join(folder, name + (".gz" if gzipped else ""))
        with open(path, "wb") as f:
            f.write(gzip.compress(raw) if gzipped else raw)
    return str(folder)


def torchvision_reading(root, name: str = "FashionMNIST"):
    """torchvision's own reader on ``root/<name>/raw/`` (uncompressed files, as it keeps them)."""
    import torchvision

    cls = getattr(torchvision.datasets, name)
    return [(d.data, d.targets) for d in (cls(str(root), train=True), cls(str(root), train=False))]


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    """Debian's folder as if the package were not installed."""
    monkeypatch.setitem(data.DEBIAN_FOLDERS, "FashionMNIST", str(tmp_path / "not-installed"))


@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_files_read_as_torchvision_reads_them(tmp_path, gzipped):
    arrays = tiny_arrays()
    write_files(tmp_path / "ours", arrays, gzipped)
    write_files(tmp_path / "tv" / "FashionMNIST" / "raw", arrays, gzipped=False)
    ours = data.load_dataset("FashionMNIST", str(tmp_path / "ours"), use_test=True)
    for part, (images, labels) in zip((ours.train, ours.test), torchvision_reading(tmp_path / "tv")):
        assert part.images.dtype == torch.uint8 and part.images.shape == (len(images), 1, 28, 28)
        assert part.labels.dtype == torch.int64
        assert torch.equal(part.images[:, 0], images) and torch.equal(part.labels, labels)
    assert (ours.channels, ours.size, ours.num_classes) == (1, 28, 10)


def test_folders_in_order_data_path_debian_torchvision(tmp_path, monkeypatch):
    """--data_path's own files first, then Debian's folder, then torchvision's <data_path>/<name>/raw/."""
    root = tmp_path / "data"
    write_files(root / "FashionMNIST" / "raw", tiny_arrays(seed=3), gzipped=True)  # only the .gz, as downloaded
    debian = write_files(tmp_path / "debian", tiny_arrays(seed=2, train=9), gzipped=True)
    monkeypatch.setitem(data.DEBIAN_FOLDERS, "FashionMNIST", debian)
    assert len(data.load_dataset("FashionMNIST", str(root), use_test=True).train) == 9  # Debian's
    write_files(root, tiny_arrays(seed=1, train=7), gzipped=False)
    assert len(data.load_dataset("FashionMNIST", str(root), use_test=True).train) == 7  # --data_path's
    monkeypatch.setitem(data.DEBIAN_FOLDERS, "FashionMNIST", str(tmp_path / "none"))
    for name in FILES:
        os.remove(root / name)
    got = data.load_dataset("FashionMNIST", str(root), use_test=True)
    assert torch.equal(got.train.images[:, 0], torch.from_numpy(tiny_arrays(seed=3)[0]).to(torch.uint8))
    # MNIST: no Debian folder; the same layout under MNIST/raw/
    write_files(root / "MNIST" / "raw", tiny_arrays(seed=4), gzipped=False)
    mnist = data.load_dataset("MNIST", str(root), use_test=True)
    assert torch.equal(mnist.test.labels, torch.from_numpy(tiny_arrays(seed=4)[3]).long())


def test_split_augmentation_and_batch_size(tmp_path):
    rng = np.random.RandomState(0)
    arrays = [rng.randint(0, 256, (5003, 28, 28)), rng.randint(0, 10, 5003), rng.randint(0, 256, (4, 28, 28)),
              rng.randint(0, 10, 4)]
    root = write_files(tmp_path, arrays, gzipped=False)
    full = data.load_dataset("FashionMNIST", root, use_test=True)
    held_out = data.load_dataset("FashionMNIST", root, use_test=False)
    assert (len(held_out.train), len(held_out.test)) == (3, 5000)  # the last 5000 training images
    assert torch.equal(held_out.test.images, full.train.images[-5000:])
    assert (full.padding, full.flip) == (2, True)  # clothes mirror: flips; 2 pixels of 28 as 4 of 32
    mnist_root = write_files(tmp_path / "mnist", arrays, gzipped=True)
    mnist = data.load_dataset("MNIST", mnist_root, use_test=True)
    assert (mnist.padding, mnist.flip) == (2, False)  # a mirrored digit is another symbol
    assert data.default_batch_size("FashionMNIST") == data.default_batch_size("MNIST") == 128
    mean, std = data.normalisation("VGG", 1)  # one channel: the channel average of the constants
    assert np.isclose(mean[0], (0.485 + 0.456 + 0.406) / 3) and np.isclose(std[0], (0.229 + 0.224 + 0.225) / 3)
    x, _ = next(iter(data.make_loaders(full, 64, "VGG")["train"]))
    assert x.shape == (64, 1, 28, 28)


def test_train_py_on_fashion_mnist_files(tmp_path):
    """A training script end to end: a one-channel 28x28 model, its checkpoint saying so."""
    import train

    root = write_files(tmp_path / "data", tiny_arrays(train=40, test=10), gzipped=True)
    train.main([f"--dir={tmp_path / 'run'}", "--dataset=FashionMNIST", f"--data_path={root}", "--model=ConvFC",
                "--epochs=1", "--use_test", "--batch_size=16"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0 <= summary["test_acc"] <= 100
    ckpt = torch.load(tmp_path / "run" / "checkpoint-1.pt", weights_only=True)
    assert ckpt["model_kwargs"] == {"in_channels": 1, "image_size": 28} and ckpt["dataset"] == "FashionMNIST"


@pytest.mark.skipif(not os.path.isdir(DEBIAN), reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN})")
def test_the_real_debian_package(tmp_path, monkeypatch):
    """The whole of Fashion-MNIST from /usr/share/datasets/fashion-mnist/, as torchvision reads the same files."""
    monkeypatch.setitem(data.DEBIAN_FOLDERS, "FashionMNIST", DEBIAN)
    full = data.load_dataset("FashionMNIST", str(tmp_path / "empty"), use_test=True, download=False)
    assert full.train.images.shape == (60000, 1, 28, 28) and full.test.images.shape == (10000, 1, 28, 28)
    assert full.train.images.dtype == torch.uint8
    for part in (full.train, full.test):
        assert torch.equal(part.labels.unique(), torch.arange(10))
    raw = tmp_path / "tv" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:  # torchvision reads the uncompressed files it extracts
        with gzip.open(os.path.join(DEBIAN, name + ".gz")) as src, open(raw / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    (train_images, train_labels), (test_images, test_labels) = torchvision_reading(tmp_path / "tv")
    assert torch.equal(full.train.labels, train_labels) and torch.equal(full.test.labels, test_labels)
    for i in (0, 1, 12345, 59999):
        assert torch.equal(full.train.images[i, 0], train_images[i])
    for i in (0, 9999):
        assert torch.equal(full.test.images[i, 0], test_images[i])
    held_out = data.load_dataset("FashionMNIST", str(tmp_path / "empty"), download=False)
    assert (len(held_out.train), len(held_out.test)) == (55000, 5000)


# --------------------------------------------------------------------------- bad input

def test_malformed_idx_files_are_errors_naming_the_file(tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
    cases = {"truncated": idx_bytes(images)[:-5], "trailing": idx_bytes(images) + b"\0",
             "magic": b"\0\0\x0d\x03" + idx_bytes(images)[4:], "short": b"\0\0\x08",
             "header": b"\0\0\x08\x03\0\0\0\x03"}
    for name, raw in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(UserError, match=str(path)):
            data.read_idx(str(path))
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(idx_bytes(images))[:-10])  # a gzip stream cut short
    with pytest.raises(UserError, match=str(broken)):
        data.read_idx(str(broken))
    assert np.array_equal(data.read_idx(data.write_idx(str(tmp_path / "ok.gz"), images)), images)


def test_inconsistent_files_are_errors(tmp_path, no_debian):
    arrays = tiny_arrays()
    wrong = {"labels": [arrays[0], arrays[1][:-1]] + arrays[2:],  # one label short
             "class": [arrays[0], np.full(12, 10)] + arrays[2:],  # label 10 of 10 classes
             "swapped": [arrays[1], arrays[0]] + arrays[2:]}  # labels where the images belong
    for case, files in wrong.items():
        root = write_files(tmp_path / case, files, gzipped=False)
        with pytest.raises(UserError, match=os.path.join(root, "train-")):
            data.load_dataset("FashionMNIST", root, use_test=True)


def test_a_truncated_file_stops_a_script_with_one_error_line(tmp_path, capsys, no_debian):
    import train

    root = write_files(tmp_path / "data", tiny_arrays(), gzipped=True)
    path = os.path.join(root, FILES[2] + ".gz")
    with open(path, "rb") as f:
        raw = gzip.decompress(f.read())
    with open(path, "wb") as f:
        f.write(gzip.compress(raw[:-100]))
    line = user_error(capsys, train.main, f"--dir={tmp_path / 'run'}", "--dataset=FashionMNIST",
                      f"--data_path={root}", "--model=MLP", "--use_test", "--epochs=1")
    assert path in line and "truncated" in line


def test_missing_files_name_the_package_the_folders_and_the_download(tmp_path, capsys, monkeypatch, no_debian):
    """Nothing anywhere and no network: one error line; the folders the failed download made are removed."""
    import torchvision

    import train

    def offline(self):  # as torchvision's download: the raw folder first, then the network fails
        os.makedirs(self.raw_folder, exist_ok=True)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    nowhere = tmp_path / "nowhere"
    line = user_error(capsys, train.main, f"--dir={tmp_path / 'run'}", "--dataset=FashionMNIST",
                      f"--data_path={nowhere}", "--model=MLP", "--epochs=1")
    for words in ("dataset-fashion-mnist", str(nowhere), str(tmp_path / "not-installed"),
                  f"{nowhere}/FashionMNIST/raw", "download failed", "no network"):
        assert words in line, (words, line)
    assert not nowhere.exists()


def test_missing_mnist_offline(tmp_path, capsys, monkeypatch):
    """torchvision's real download through an unreachable proxy: it fails at once, and nothing is left."""
    import urllib.request

    import train

    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setattr(urllib.request, "_opener", None)  # urlopen's opener, built again with the proxies
    (tmp_path / "data").mkdir()
    line = user_error(capsys, train.main, f"--dir={tmp_path / 'run'}", "--dataset=MNIST", "--model=MLP",
                      f"--data_path={tmp_path / 'data'}")
    assert "MNIST not found" in line and f"{tmp_path}/data/MNIST/raw" in line and "download failed" in line
    assert os.listdir(tmp_path / "data") == []  # the existing folder stays, MNIST/raw is gone


def test_no_augment_trains_on_the_plain_images_and_is_inherited(tmp_path):
    """--no_augment: no crops, no flips; the scripts that start from its checkpoints keep it unless told."""
    import fge
    import train

    root = write_files(tmp_path / "data", tiny_arrays(train=32, test=8), gzipped=False)
    plain = data.load_dataset("FashionMNIST", root, use_test=True, augment=False)
    assert (plain.padding, plain.flip) == (0, False)
    assert not data.make_loaders(plain, 16, "VGG")["train"].augment
    common = ["--dataset=FashionMNIST", f"--data_path={root}", "--use_test", "--batch_size=16"]
    train.main([f"--dir={tmp_path / 'sgd'}", *common, "--model=MLP", "--epochs=2", "--save_freq=1", "--no_augment"])
    ckpt = torch.load(tmp_path / "sgd" / "checkpoint-1.pt", weights_only=True)
    assert ckpt["args"]["augment"] is False
    fge.main([f"--dir={tmp_path / 'fge'}", *common, f"--ckpt={tmp_path / 'sgd' / 'checkpoint-1.pt'}", "--epochs=2",
              "--cycle=2"])
    assert json.loads((tmp_path / "fge" / "args.json").read_text())["augment"] is False
    train.main([f"--dir={tmp_path / 'augmented'}", *common, "--model=MLP", "--epochs=1"])
    assert json.loads((tmp_path / "augmented" / "args.json").read_text())["augment"] is True
