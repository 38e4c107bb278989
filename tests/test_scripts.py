"""scripts/*_table.sh in --dry-run mode (their commands, flags and published settings) and
scripts/collect.py on summary.json files written here. Fast: nothing is trained."""
from __future__ import annotations

import functools
import glob
import importlib
import json
import os
import re
import shlex
import stat
import subprocess
import sys

import pytest

from conftest import ROOT

TABLE_SCRIPTS = {"curves_table.sh": 42, "fge_table.sh": 39, "swa_table.sh": 24,  # -> commands printed
                 "subspaces_table.sh": 30, "simplexes_table.sh": 22}
TARGETS = ("train.py", "train_curve.py", "eval_curve.py", "fge.py", "swa.py", "eval_ensemble.py",
           "train_subspace.py", "simplex.py")
PATH_FLAGS = ("ckpt", "init_start", "init_end", "resume", "ckpt_a", "ckpt_b")


class Command:
    """One printed command: ``python SCRIPT --flag=value --switch ...``."""

    def __init__(self, line: str):
        self.line, words = line, shlex.split(line)
        assert words[0] == "python" and words[1].endswith(".py"), line
        self.script, self.flags = words[1], words[2:]
        self.options: dict[str, list] = {}
        for flag in self.flags:
            assert flag.startswith("--"), line
            name, has_value, value = flag[2:].partition("=")
            self.options.setdefault(name, []).append(value if has_value else True)

    def get(self, name: str):
        values = self.options.get(name, [None])
        assert len(values) == 1, (name, self.line)
        return values[0]

    @property
    def target(self) -> str:
        """The script whose parser reads these flags: train.py hands --curve over to train_curve.py."""
        return "train_curve.py" if self.script == "train.py" and "curve" in self.options else self.script


def run_bash(script: str, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", os.path.join(ROOT, "scripts", script), *map(str, args)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHON": "python", **(env or {})})


@functools.lru_cache(maxsize=None)
def dry_run(script: str, data: str = "/data", out: str = "/out") -> tuple[Command, ...]:
    result = run_bash(script, data, out, "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"cd {shlex.quote(ROOT)}"  # the commands run from the repository root
    return tuple(Command(line) for line in lines[1:])


@functools.lru_cache(maxsize=None)
def study_dry_run(script: str, out: str = "/out", *options: str) -> tuple[Command, ...]:
    """The commands that a study script of one OUT_DIR (fashion_tables.sh, alignment_table.sh) prints
    with --data_path=/data and ``options``."""
    result = run_bash(script, out, "--dry-run", "--data_path=/data", *options)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"cd {shlex.quote(ROOT)}"  # the commands run from the repository root
    return tuple(Command(line) for line in lines[1:])


def all_commands() -> list[Command]:
    return [command for script in TABLE_SCRIPTS for command in dry_run(script)]


def find(commands, script: str, **flags) -> list[Command]:
    """The commands of ``script`` that have all of ``flags`` (True for a switch)."""
    return [c for c in commands if c.script == script and all(
        c.options.get(name) == [value if value is True else str(value)] for name, value in flags.items())]


# --------------------------------------------------------------------------- the shell scripts

def test_every_table_script_is_tested():
    """Each table script is tested here (the CIFAR tables) or in a test file of its own."""
    found = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "scripts", "*_table*.sh"))}
    own = {s for s in found if os.path.exists(os.path.join(ROOT, "tests", f"test_{s[:-3]}.py"))}
    assert found - own == set(TABLE_SCRIPTS) and own == {"alignment_table.sh", "fashion_tables.sh"}


@pytest.mark.parametrize("script", sorted(TABLE_SCRIPTS))
def test_dry_run_prints_the_commands_and_runs_nothing(script, tmp_path):
    commands = dry_run(script, str(tmp_path / "data"), str(tmp_path / "out"))
    assert len(commands) == TABLE_SCRIPTS[script]
    assert not (tmp_path / "out").exists()
    assert {c.script for c in commands} <= set(TARGETS)
    dirs = [c.get("dir") for c in commands]
    assert len(set(dirs)) == len(dirs), "every run has its own folder"
    assert all(d.startswith(f"{tmp_path}/out/") for d in dirs)
    assert all(c.get("data_path") == f"{tmp_path}/data" and c.get("use_test") for c in commands)


def test_usage_mistakes_are_errors():
    for args in [(), ("/data",), ("/data", "/out", "--bogus")]:
        result = run_bash("swa_table.sh", *args)
        assert result.returncode == 2 and result.stderr.startswith("error:"), result
    result = run_bash("fge_table.sh", "--help")
    assert result.returncode == 0 and "fge_table.sh DATA_PATH OUT_DIR [--dry-run]" in result.stdout


def known_options(script: str) -> set[str]:
    """The option names in ``python SCRIPT --help`` (for a script without build_parser())."""
    result = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"--([A-Za-z0-9_-]+)", result.stdout))


@pytest.mark.parametrize("target", TARGETS)
def test_printed_flags_parse_with_the_scripts_own_parser(target, capsys):
    """Each printed command's flags go through the script's parser (names, choices, types):
    checked for every script that exists yet (train.py always does)."""
    commands = [c for c in all_commands() if c.target == target]
    assert commands
    if not os.path.exists(os.path.join(ROOT, target)):
        assert target != "train.py"
        pytest.skip(f"{target} is not written yet")
    module = importlib.import_module(target[:-3])
    if not hasattr(module, "build_parser"):
        names = known_options(target)
        for command in commands:
            assert set(command.options) <= names, (set(command.options) - names, command.line)
        return
    for command in commands:
        try:
            args = module.build_parser().parse_args(command.flags)
        except SystemExit:
            pytest.fail(f"{target} rejects `{command.line}`: {capsys.readouterr().err}")
        for name, values in command.options.items():  # a repeated flag must collect every value
            if len(values) > 1:
                assert getattr(args, name) == values, (name, command.line)


def written_checkpoints(command: Command, train_save_freq: int) -> set[str]:
    """The checkpoint files a command leaves in its --dir (DESIGN.md's names)."""
    folder, epochs = command.get("dir"), int(command.get("epochs") or 0)
    if command.target == "train_curve.py":
        return {f"{folder}/checkpoint-{epochs}.pt"}
    if command.script == "train.py":
        freq = int(command.get("save_freq") or train_save_freq)
        return {f"{folder}/checkpoint-{e}.pt" for e in [*range(freq, epochs + 1, freq), epochs]}
    if command.script == "swa.py":  # every save_freq-th epoch and the last; swa.pt, swag.pt
        return ({f"{folder}/checkpoint-{epochs}.pt"} | ({f"{folder}/swa.pt"} if command.get("swa") else set())
                | ({f"{folder}/swag.pt"} if command.get("swag") else set()))
    if command.script == "align.py":
        return {f"{folder}/aligned.pt"}
    if command.script == "fge.py" and command.get("ckpt"):
        import ensembles
        start = int(re.search(r"checkpoint-(\d+)\.pt$", command.get("ckpt")).group(1))
        return {f"{folder}/fge-{start + e}.pt" for e in ensembles.snapshot_epochs(
            epochs, int(command.get("cycle")), command.get("schedule") or "linear")}
    return set()


@pytest.mark.parametrize("script", sorted(TABLE_SCRIPTS))
def test_every_checkpoint_read_is_written_by_an_earlier_command(script):
    if script == "fge_table.sh":
        pytest.importorskip("ensembles")
    assert_every_read_is_written_before(dry_run(script))


def assert_every_read_is_written_before(commands) -> None:
    """Each checkpoint a command reads is one that an earlier command of the list writes."""
    import train

    save_freq, written = train.build_parser().get_default("save_freq"), set()
    for command in commands:
        for name in PATH_FLAGS:
            for path in command.options.get(name, []):
                assert path in written, f"{path} is read before any command writes it: {command.line}"
        written |= written_checkpoints(command, save_freq)


def test_the_published_settings():
    curves, fge, swa = (dry_run(s) for s in ("curves_table.sh", "fge_table.sh", "swa_table.sh"))
    # endpoints: VGG16 with the VGG transform, the ResNets with ResNet's; two seeds each
    for command in find(curves + fge, "train.py"):
        assert command.get("transform") == ("VGG" if command.get("model") == "VGG16" else "ResNet"), command.line
    assert len(find(curves, "train.py", dataset="CIFAR100", model="VGG16", epochs=200, lr=0.05, wd="5e-4")) == 2
    assert len(find(curves, "train.py", dataset="CIFAR10", model="PreResNet164", epochs=150, lr=0.1, wd="3e-4")) == 2
    # curves: 3 bends, fixed ends, the README's epochs/lr/wd; evaluated, as is the segment
    for curve in ("Bezier", "PolyChain"):
        assert len(find(curves, "train.py", curve=curve, model="VGG16", num_bends=3, fix_start=True,
                        fix_end=True, epochs=600, lr=0.015, wd="5e-4")) == 2
        assert len(find(curves, "train.py", curve=curve, model="WideResNet28x10", epochs=200, lr=0.03)) == 2
    evals = find(curves, "eval_curve.py", num_points=61)
    assert len(evals) == 18 and len([c for c in evals if "init_start" in c.options]) == 6
    # FGE from 80% of a 200-epoch run, the README's VGG16 command; Ind and SSE for 1-3 budgets
    [vgg] = [c for c in find(fge, "fge.py", transform="VGG", epochs=40, wd="5e-4", lr_1="1e-2",
                             lr_2="1e-2", cycle=2, dataset="CIFAR100") if c.get("dir").endswith("fge-run1")]
    assert vgg.get("ckpt").endswith("VGG16/endpoint-1/checkpoint-160.pt")
    assert len(find(fge, "fge.py", schedule="cosine")) == 9
    assert [len(c.options["ckpt"]) for c in find(fge, "eval_ensemble.py") if "VGG16" in c.get("dir")] == \
        [2, 20 * 2, 3, 20 * 3]  # ind-2B, fge-2B, ind-3B, fge-3B
    # SWA: the README's 1.5-budget command for VGG16 on CIFAR-100, and PreResNet's own swa_lr
    assert find(swa, "swa.py", dataset="CIFAR100", model="VGG16", epochs=300, lr_init=0.05, wd="5e-4",
                swa=True, swa_start=161, swa_lr=0.01)
    assert find(swa, "swa.py", dataset="CIFAR100", model="PreResNet164", epochs=225, swa_start=126, swa_lr=0.05)
    assert find(swa, "swa.py", dataset="CIFAR10", model="PreResNet164", epochs=188, swa_start=126, swa_lr=0.01)
    assert len([c for c in swa if "swa" not in c.options]) == 6  # the SGD baselines


def test_the_subspace_papers_settings():
    subspaces, simplexes = dry_run("subspaces_table.sh"), dry_run("simplexes_table.sh")
    # learning-subspaces' CIFAR-10 configs: cResNet20, 160 epochs, lr 0.1, 5 warm-up epochs, wd 1e-4, beta 1
    learned = find(subspaces, "train_subspace.py", model="cResNet20", epochs=160, lr=0.1, warmup_epochs=5,
                   wd="1e-4", beta=1, transform="VGG", dataset="CIFAR10")
    assert len(learned) == 22 and {c.get("seed") for c in learned} == {"0", "1"}
    assert len([c for c in learned if c.get("layerwise")]) == 10
    assert sorted(int(c.get("num_vertices")) for c in learned if c.get("shape") == "simplex") == \
        sorted([3, 4, 5, 6] * 4)
    assert len(find(subspaces, "train.py", model="cResNet20", schedule="cosine", warmup_epochs=5, epochs=160,
                    lr=0.1, wd="1e-4")) == 3
    assert len(find(subspaces, "swa.py", model="cResNet20", epochs=160, swa_start=121, swa_lr=0.05)) == 2
    # loss-surface-simplexes: 300-epoch cosine VGG16s; 4 vertices, 10 (CIFAR-10) or 20 (CIFAR-100) epochs each,
    # the original's summed loss of 5 points at lr 0.01, wd 5e-4, lambda 1e-6 as the mean at 5x, /5, /5
    assert len(find(simplexes, "train.py", model="VGG16", epochs=300, lr=0.05, wd="5e-4", schedule="cosine")) == 6
    for dataset, epochs in (("CIFAR10", 10), ("CIFAR100", 20)):
        [espro] = find(simplexes, "simplex.py", dataset=dataset, num_vertices=4, epochs_per_vertex=epochs, lr=0.05,
                       wd="1e-4", volume_reg="2e-7", num_samples=5)
        assert len(espro.options["ckpt"]) == 3
        fge_runs = find(simplexes, "fge.py", dataset=dataset, epochs=3 * epochs * 5, cycle=2)
        assert len(fge_runs) == 3
    assert [len(c.options["ckpt"]) for c in find(simplexes, "eval_ensemble.py") if "CIFAR10/" in c.get("dir")] == \
        [2, 75 * 2, 3, 75 * 3]  # ind-2, fge-2, ind-3, fge-3


def test_a_run_prints_and_runs_each_command_once(tmp_path):
    """Without --dry-run the same commands run; a second start skips the runs that finished."""
    log, fake = tmp_path / "log", tmp_path / "fake-python"
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n'
                    'for a; do [[ $a == --dir=* ]] && mkdir -p "${a#--dir=}" && echo {} > "${a#--dir=}/summary.json"; done\n'
                    'exit 0\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "out"
    first = run_bash("swa_table.sh", "/data", out, env={"PYTHON": str(fake)})
    assert first.returncode == 0, first.stderr
    expected = [c.flags for c in dry_run("swa_table.sh", "/data", str(out))]
    assert [line.split()[1:] for line in log.read_text().splitlines()] == expected
    second = run_bash("swa_table.sh", "/data", out, env={"PYTHON": str(fake)})
    assert second.returncode == 0 and second.stdout.count("# done, skipped") == len(expected)
    assert len(log.read_text().splitlines()) == len(expected)


# --------------------------------------------------------------------------- collect.py

STATS = {"train_loss": (0.30, 0.40, 0.20, 0.90), "train_err": (1.0, 1.5, 0.5, 9.0),
         "test_nll": (1.1, 1.2, 1.0, 1.6), "test_err": (27.0, 28.0, 26.5, 31.0)}  # start, end, min, max


def fake_summary(command: Command) -> dict:
    """A summary.json as DESIGN.md specifies it for ``command``'s script, with recognisable numbers."""
    if command.target == "train_curve.py":
        return {"epoch": 600, "train_loss": 0.3, "train_acc": 99.0}
    return {
        "train.py": {"epoch": 200, "train_loss": 0.01, "train_acc": 99.9, "test_nll": 1.1, "test_acc": 71.11},
        "eval_curve.py": {"length": 42.0, **{key: dict(zip(("start", "end", "min", "max"), v), avg=0.0, int=0.0)
                                             for key, v in STATS.items()}},
        "fge.py": {"ensemble_size": 20, "ens_acc": 74.44, "ens_nll": 0.9, "model_acc": 72.0},
        "eval_ensemble.py": {"model_acc": [71.0, 72.0], "ens_acc": 75.55, "ens_nll": 0.95},
        "swa.py": {"swa_n": 40 if "swa" in command.options else 0, "sgd_test_acc": 72.22, "sgd_test_nll": 1.2,
                   "swa_test_acc": 73.33 if "swa" in command.options else None, "swa_test_nll": None,
                   "swa_test_ece": 0.0123},
        "train_subspace.py": {"midpoint_acc": 92.0 + int(command.get("seed") or 0), "midpoint_ece": 0.01,
                              "endpoint_acc": [90.0, 91.0], "endpoint_ensemble_acc": 93.5, "midpoint_nll": 0.3},
        "simplex.py": {"ensemble_acc": 76.0, "ensemble_acc_by_simplexes": [74.0, 75.0, 76.0], "ensemble_nll": 0.9},
    }[command.script]


def collect(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "collect.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def tables(markdown: str) -> dict[str, list[list[str]]]:
    """{section title up to its colon: the table's body rows, as lists of cells}."""
    result, title = {}, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            title = line[3:].split(":")[0]
            result[title] = []
        elif line.startswith("|") and not line.startswith("|--") and result[title] is not None:
            result[title].append([cell.strip() for cell in line.strip("|").split("|")])
    return {title: rows[1:] for title, rows in result.items()}  # without the header row


def test_collect_puts_our_numbers_beside_the_papers(tmp_path):
    out = tmp_path / "out"
    for script in TABLE_SCRIPTS:
        for command in dry_run(script, "/data", str(out)):
            os.makedirs(command.get("dir"))
            with open(os.path.join(command.get("dir"), "summary.json"), "w") as f:
                json.dump(fake_summary(command), f)
    result = collect(out, "--out", tmp_path / "tables.md")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tables.md").read_text() == result.stdout
    found = tables(result.stdout)
    assert set(found) == {"Curves, CIFAR100", "Curves, CIFAR10", "FGE, SSE and independent ensembles, CIFAR100",
                          "SWA and SGD, CIFAR100", "SWA and SGD, CIFAR10", "Subspaces, CIFAR10",
                          "Simplexes, CIFAR100", "Simplexes, CIFAR10"}
    labels = {"Curves": 2, "FGE": 2, "SWA": 1, "Simplexes": 2}
    subspaces = found.pop("Subspaces, CIFAR10")
    assert ["line", "92.50", "unconfirmed", "0.0100", "90.50", "93.50", "unconfirmed"] in subspaces  # seeds 0, 1
    assert ["standard training", "71.11", "unconfirmed", "—", "—", "75.55", "unconfirmed"] in subspaces
    assert ["SWA", "73.33", "unconfirmed", "0.0123", "—", "—", "—"] in subspaces
    assert len(subspaces) == 2 + 3 + 8
    assert ["VGG16", "ESPRO", "74.00", "unconfirmed", "75.00", "unconfirmed", "76.00", "unconfirmed"] in \
        found["Simplexes, CIFAR10"]
    for title, rows in found.items():
        first = labels[title.split(",")[0].split(" ")[0]]
        assert all(cell != "—" for row in rows for cell in row[first::2]), title  # every run was found
    curves = found["Curves, CIFAR100"]
    assert ["VGG16", "Endpoints", "0.30", "0.89", "0.40", "0.89", "27.00", "27.5", "28.00", "27.5"] in curves
    assert ["VGG16", "Bezier", "0.20", "0.48", "0.90", "0.89", "26.50", "27.4", "31.00", "30.1"] in curves
    assert ["VGG16", "Segment", "0.20", "—", "0.90", "—", "26.50", "—", "31.00", "—"] in curves
    ensembles = found["FGE, SSE and independent ensembles, CIFAR100"]
    assert ["VGG16", "Ind", "71.11", "72.5 ± 0.1", "75.55", "74.8", "75.55", "75.6"] in ensembles
    assert ["VGG16", "FGE", "74.44", "74.6 ± 0.1", "75.55", "76.1", "75.55", "76.6"] in ensembles
    assert ["VGG16", "SSE", "74.44", "—", "74.44", "—", "74.44", "—"] in ensembles
    assert ["VGG16", "72.22", "72.55 ± 0.10", "73.33", "73.91 ± 0.12", "73.33", "74.17 ± 0.15", "73.33",
            "74.27 ± 0.25"] in found["SWA and SGD, CIFAR100"]


def test_collect_shows_missing_runs_as_dashes(tmp_path):
    result = collect(tmp_path, "--table", "swa")
    assert result.returncode == 0, result.stderr
    rows = tables(result.stdout)["SWA and SGD, CIFAR10"]
    assert ["WideResNet28x10", "—", "96.18 ± 0.11", "—", "96.45 ± 0.11", "—", "96.64 ± 0.08", "—",
            "96.79 ± 0.05"] in rows
    assert "Curves" not in result.stdout


def test_collect_mistakes_are_errors(tmp_path):
    # right after a dry run the folder does not exist yet: the tables, every cell missing
    before = collect(tmp_path / "not-yet", "--table", "swa")
    assert before.returncode == 0 and "| VGG16           | —" in before.stdout and not (tmp_path / "not-yet").exists()
    (tmp_path / "a-file").write_text("")
    result = collect(tmp_path / "a-file")
    assert result.returncode == 2 and result.stderr.startswith("error:") and "Traceback" not in result.stderr
    broken = tmp_path / "swa" / "CIFAR10" / "VGG16" / "sgd"
    broken.mkdir(parents=True)
    (broken / "summary.json").write_text("{not json")
    result = collect(tmp_path, "--table", "swa")
    assert result.returncode == 2 and result.stderr.startswith("error:") and "Traceback" not in result.stderr
