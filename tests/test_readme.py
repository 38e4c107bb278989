"""The README and its docs/ pages do what they say: the README's figures are docs/demo.json's, its
DIGITS tour runs in order (shortened), its CIFAR commands parse with the scripts' own parsers,
the library page's code runs as pasted, and every link points to a file that exists."""
from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT, run_here

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import readme  # noqa: E402

TEXT = open(os.path.join(ROOT, "README.md")).read()
LIBRARY = open(os.path.join(ROOT, "docs", "library.md")).read()


def code_blocks(section: str, language: str, text: str = TEXT) -> list[str]:
    """The ```language blocks of the section of ``text`` (the README) whose heading is ``section``."""
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start:end if end != -1 else None]
    return re.findall(rf"```{language}\n(.*?)```", body, re.S)


def commands(section: str) -> list[str]:
    lines = "\n".join(code_blocks(section, "bash")).splitlines()
    return [line for line in lines if line.startswith("python ")]


def test_the_readme_figures_are_docs_demo_json():
    with open(os.path.join(ROOT, "docs", "demo.json")) as f:
        record = json.load(f)
    blocks = readme.render(record)
    assert set(blocks) == {name for name in re.findall(r"<!-- generated: (\S+) -->", TEXT)
                           if not name.startswith("fashion-")}  # those are the study's (below)
    assert readme.update(TEXT, blocks) == TEXT, "README.md disagrees with docs/demo.json: run `make readme`"


def test_the_study_page_and_the_readme_headline_are_docs_fashion_json():
    from reports import pages, study

    with open(os.path.join(ROOT, "docs", "fashion.json")) as f:
        blocks = study.blocks(json.load(f))
    page = open(os.path.join(ROOT, "docs", "fashion.md")).read()
    assert set(pages.parts(page)) | {"fashion-headline"} == set(blocks)
    assert set(pages.parts(TEXT)) & set(blocks) == {"fashion-headline"}
    for text, name in ((page, "docs/fashion.md"), (TEXT, "README.md")):
        assert pages.update(text, blocks) == text, f"{name} disagrees with docs/fashion.json: run scripts/study_docs.py"


# the tour's lengths, shortened: epochs, the checkpoint FGE starts from, points, grid
SHORTER = [("--epochs=20", "--epochs=2"), ("--save_freq=16", "--save_freq=1"), ("checkpoint-16.pt", "checkpoint-1.pt"),
           ("checkpoint-20.pt", "checkpoint-2.pt"), ("--epochs=10", "--epochs=1"), ("--epochs=8", "--epochs=2"),
           ("--swa_start=16", "--swa_start=2"), ("--warmup_epochs=2", "--warmup_epochs=1"),
           ("--epochs_per_vertex=2", "--epochs_per_vertex=1")]
MORE = {"eval_curve.py": ["--num_points=4"], "plane.py": ["--grid_points=3", "--curve_points=3"],
        "train_subspace.py": ["--num_points=3"], "simplex.py": ["--num_samples=2", "--num_test_samples=2"],
        "hessian.py": ["--num_images=64", "--max_iter=5", "--trace_max_iter=5"], "surface.py": ["--x=-1:1:3"],
        "rays.py": ["--num_directions=2", "--num_points=3"], "swag.py": ["--num_samples=2"]}


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
    return [run_here(*shortened(line, root)) for line in commands("A tour of the scripts on DIGITS")]


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    return root, run_tour(str(root))


def test_the_digits_tour_runs_in_order_and_writes_what_it_says(tour):
    root, printed = tour
    lines = commands("A tour of the scripts on DIGITS")
    assert len(lines) == len(printed) >= 18
    digits = root / "digits"
    for name in ("net1", "net2", "segment", "curve", "curve-eval", "plane", "aligned", "segment-aligned", "fge",
                 "swa", "swag", "sgd-swa", "rays", "hessian", "surface", "line", "spro"):
        assert (digits / name / "summary.json").is_file(), name
    assert (digits / "plane" / "plane.png").is_file() and (digits / "curve-eval" / "curve.png").is_file()
    segment = json.loads((digits / "segment" / "summary.json").read_text())
    assert segment["test_err"]["max"] >= segment["test_err"]["start"]
    assert "ensemble of 2" in printed[lines.index(next(l for l in lines if "eval_ensemble" in l))]
    assert (digits / "line" / "subspace.png").is_file() and (digits / "spro" / "ensemble.png").is_file()


def run_snippet(snippet: str) -> str:
    result = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_library_pages_curve_code_runs(tour):
    root, _ = tour
    (snippet,) = code_blocks("Curves from your own code", "python", LIBRARY)
    snippet = snippet.replace("runs/digits", f"{root}/digits").replace("checkpoint-20.pt", "checkpoint-2.pt")
    assert "'accuracy'" in run_snippet(snippet)


@pytest.mark.parametrize("section", ["Lines and simplexes from your own code", "Alignment and the landscape"])
def test_the_library_pages_code_runs_as_pasted(section):
    (snippet,) = code_blocks(section, "python", LIBRARY)
    assert run_snippet(snippet).strip()


def test_every_link_points_to_a_file():
    for page in ["README.md"] + [os.path.join("docs", p) for p in os.listdir(os.path.join(ROOT, "docs"))
                                 if p.endswith(".md")]:
        text = open(os.path.join(ROOT, page)).read()
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            path = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), target))
            assert os.path.exists(path), f"{page} links to {target}, which does not exist"


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


def test_the_tables_page_counts_each_scripts_runs():
    """docs/tables.md's "runs" column: the commands each table script's dry run prints."""
    text = open(os.path.join(ROOT, "docs", "tables.md")).read()
    rows = re.findall(r"^\| `scripts/(\w+_table\.sh)` \|[^|]*\| (\d+) \|", text, re.M)
    assert len(rows) >= 5
    for script, runs in rows:
        out = subprocess.run(["bash", os.path.join(ROOT, "scripts", script), "data", "/tmp/counted", "--dry-run"],
                             capture_output=True, text=True, check=True, env={**os.environ, "PYTHON": "python"}).stdout
        assert sum(line.startswith("python ") for line in out.splitlines()) == int(runs), script


def test_study_docs_mistakes_are_one_error_line(tmp_path):
    for args in (["--from", str(tmp_path / "nowhere")], ["--wall_minutes", "soon"]):
        result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "study_docs.py"), *args],
                                capture_output=True, text=True, timeout=60)
        lines = result.stderr.splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.stderr
