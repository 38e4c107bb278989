"""The README does what it says: its figures are docs/demo.json's, its DIGITS tour runs in order
(shortened), its code snippet runs, and its CIFAR commands parse with the scripts' own parsers."""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import readme  # noqa: E402

TEXT = open(os.path.join(ROOT, "README.md")).read()


def code_blocks(section: str, language: str) -> list[str]:
    """The ```language blocks of the README section whose heading is ``section``."""
    start = TEXT.index(f"## {section}\n")
    end = TEXT.find("\n## ", start + 1)
    body = TEXT[start:end if end != -1 else None]
    return re.findall(rf"```{language}\n(.*?)```", body, re.S)


def commands(section: str) -> list[str]:
    lines = "\n".join(code_blocks(section, "bash")).splitlines()
    return [line for line in lines if line.startswith("python ")]


def test_the_readme_figures_are_docs_demo_json():
    with open(os.path.join(ROOT, "docs", "demo.json")) as f:
        record = json.load(f)
    blocks = readme.render(record)
    assert set(blocks) == set(re.findall(r"<!-- generated: (\S+) -->", TEXT))
    assert readme.update(TEXT, blocks) == TEXT, "README.md disagrees with docs/demo.json: run `make readme`"


# the tour's lengths, shortened: epochs, the checkpoint FGE starts from, points, grid
SHORTER = [("--epochs=20", "--epochs=2"), ("--save_freq=16", "--save_freq=1"), ("checkpoint-16.pt", "checkpoint-1.pt"),
           ("checkpoint-20.pt", "checkpoint-2.pt"), ("--epochs=10", "--epochs=1"), ("--epochs=8", "--epochs=2"),
           ("--swa_start=16", "--swa_start=2"), ("--warmup_epochs=2", "--warmup_epochs=1"),
           ("--epochs_per_vertex=2", "--epochs_per_vertex=1")]
MORE = {"eval_curve.py": ["--num_points=3"], "plane.py": ["--grid_points=3", "--curve_points=3"],
        "train_subspace.py": ["--num_points=3"], "simplex.py": ["--num_samples=2", "--num_test_samples=2"]}


def shortened(line: str, root: str) -> list[str]:
    """A tour line as the arguments of its script, shortened and writing under ``root``."""
    for long, short in SHORTER:
        line = line.replace(long, short)
    python, script, *args = shlex.split(line.replace("runs/digits", f"{root}/digits"))
    assert python == "python"
    return [script, *args, *MORE.get(script, [])]


def run_tour(root: str) -> list[str]:
    """Each line's script run in this process (the import of torch once, not once a line), and
    what it printed."""
    printed = []
    for line in commands("A tour of the scripts on DIGITS"):
        script, *args = shortened(line, root)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            importlib.import_module(script[:-3]).main(args)
        printed.append(out.getvalue())
    return printed


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    return root, run_tour(str(root))


def test_the_digits_tour_runs_in_order_and_writes_what_it_says(tour):
    root, printed = tour
    lines = commands("A tour of the scripts on DIGITS")
    assert len(lines) == len(printed) >= 11
    digits = root / "digits"
    for name in ("net1", "net2", "segment", "curve", "curve-eval", "plane", "fge", "swa", "line", "spro"):
        assert (digits / name / "summary.json").is_file(), name
    assert (digits / "plane" / "plane.png").is_file() and (digits / "curve-eval" / "curve.png").is_file()
    segment = json.loads((digits / "segment" / "summary.json").read_text())
    assert segment["test_err"]["max"] >= segment["test_err"]["start"]
    assert "ensemble of 2" in printed[lines.index(next(l for l in lines if "eval_ensemble" in l))]
    assert (digits / "line" / "subspace.png").is_file() and (digits / "spro" / "ensemble.png").is_file()


def test_the_code_snippet_runs(tour):
    root, _ = tour
    (snippet,) = code_blocks("Curves from your own code", "python")
    snippet = snippet.replace("runs/digits", f"{root}/digits").replace("checkpoint-20.pt", "checkpoint-2.pt")
    result = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "'accuracy'" in result.stdout


def test_the_cifar_commands_parse_and_chain():
    """The papers' commands, in order: each one's flags parse, and every checkpoint it reads is
    one that a command before it writes (a folder it fills, at an epoch it saves)."""
    written = {}  # run folder -> epochs with a kept checkpoint
    for line in commands("The papers' commands"):
        script, *flags = shlex.split(line)[1:]
        module = "train_curve" if script == "train.py" and any(f.startswith("--curve") for f in flags) else script[:-3]
        args = importlib.import_module(module).build_parser().parse_args(flags)
        for name in ("ckpt", "init_start", "init_end"):
            for path in (getattr(args, name, None) or []) if isinstance(getattr(args, name, None), list) \
                    else [getattr(args, name, None)]:
                if path:
                    folder, file = os.path.split(path)
                    epoch = int(re.search(r"checkpoint-(\d+)\.pt", file).group(1))
                    assert epoch in written.get(folder, ()), (line, path)
        if hasattr(args, "epochs") and script != "fge.py":
            saves = getattr(args, "save_freq", args.epochs)
            written[args.dir] = set(range(0, args.epochs + 1, saves)) | {args.epochs}
