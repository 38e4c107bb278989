"""Shared fixtures: tiny CIFAR-format data written by the tests, and a script runner."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


# Under pytest-xdist (`make test` runs one worker per core), each worker and every process it
# starts computes on one thread: two workers on two cores, not two workers of two threads each.
if os.environ.get("PYTEST_XDIST_WORKER") and int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: starts SLURM's daemons (tests/slurm_cluster.py); skipped, with "
                            "the reason, where they cannot be started")
    config.addinivalue_line("markers", "gpu: needs CUDA (tests/test_gpu.py; scripts/gpu_check.sh runs them); skipped, "
                            "with the reason, where torch sees no GPU")


# Sizes of the tiny CIFAR files: 5 training batches of TRAIN_PER_BATCH images.
TRAIN_PER_BATCH, TEST_IMAGES = 1020, 200


def write_cifar(root: str, name: str, seed: int = 0, images_per_batch: int = TRAIN_PER_BATCH,
                test_images: int = TEST_IMAGES) -> str:
    """Random files in CIFAR's python-batch format under ``root``, in the original code's layout
    (``root/cifar10/cifar-10-batches-py/``): 5 * ``images_per_batch`` training images."""
    import data

    data.write_random_cifar(data.cifar_candidate_dirs(name, root)[0], name, 5 * images_per_batch, test_images, seed)
    return root


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> str:
    """A data folder with tiny CIFAR10 and CIFAR100 in the original code's layout."""
    root = str(tmp_path_factory.mktemp("data"))
    write_cifar(root, "CIFAR10")
    write_cifar(root, "CIFAR100", seed=1)
    return root


def run_script(script: str, *args: str, check: bool = True, env: dict | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python <script> <args>`` from the repository root; raise with its output if it fails."""
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    result = subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)],
                            cwd=ROOT, capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} exited {result.returncode}\n--- stdout\n{result.stdout}"
                             f"\n--- stderr\n{result.stderr}")
    return result


def run_here(script: str, *args) -> str:
    """``python <script> <args>`` in this process (torch imported once, not once a run); what it printed."""
    import contextlib
    import importlib
    import io

    import cli

    argv, out = [str(a) for a in args], io.StringIO()
    saved, sys.argv = sys.argv, [script, *argv]  # what the run records in command.sh, as from a shell
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            cli.run(importlib.import_module(script[:-3]).main, argv)
    finally:
        sys.argv = saved
    return out.getvalue()


def assert_user_error(result: subprocess.CompletedProcess, status: int = 2) -> str:
    """The contract for a user's mistake: exit 2, one ``error:`` line on stderr, no traceback."""
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return errors[0]


def user_error(capsys, main, *argv) -> str:
    """The same contract in-process: ``cli.run(main, argv)`` on a bad input, without a subprocess."""
    import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, [str(a) for a in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory) -> str:
    """A ConvFC trained 3 epochs on DIGITS (test split), shared by tests that need a checkpoint."""
    folder = tmp_path_factory.mktemp("digits-convfc")
    run_script("train.py", f"--dir={folder}", "--dataset=DIGITS", "--model=ConvFC", "--epochs=3",
               "--use_test", "--lr=0.02", "--save_freq=1")
    return str(folder / "checkpoint-3.pt")


def random_checkpoint(path, model: str, seed: int, num_classes: int = 10) -> str:
    """A 'model' checkpoint of an untrained network for DIGITS (1 channel, 8x8): no training needed."""
    import torch

    import models
    import runtime

    torch.manual_seed(seed)
    kwargs = {"in_channels": 1, "image_size": 8}
    net = models.build_model(model, num_classes, **kwargs)
    runtime.save_checkpoint(str(path), runtime.model_checkpoint(
        model, net, num_classes=num_classes, model_kwargs=kwargs, dataset="DIGITS", transform="VGG", epoch=0))
    return str(path)
