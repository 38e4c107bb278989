"""scripts/fashion_tables.sh (its dry runs: every command, the settings, the runs' dependencies under
--gpus and --slurm, starting again, bad options) and collect.py --table fashion on pretend runs (numbers
in, the table and the JSON out). Fast: nothing is trained."""
from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import statistics
import sys

import pytest

from conftest import ROOT
from test_scripts import TARGETS, Command, assert_every_read_is_written_before, collect, study_dry_run, tables
from test_submit import assert_one_error_line, bash, executable, sbatch_lines, waits

MLP = "fashion/FashionMNIST/MLP"
SCRIPTS = set(TARGETS) | {"swag.py", "rays.py", "hessian.py"}  # the CIFAR tables' and SWAG's and the landscape's
B = 40  # the budget's epochs


def dry_run(out: str = "/out", *options: str) -> tuple[Command, ...]:
    return study_dry_run("fashion_tables.sh", out, *options)


def by_dir(commands) -> dict[str, Command]:
    return {os.path.basename(c.get("dir")): c for c in commands}


@pytest.mark.parametrize("seeds,networks,count", [(1, 2, 27), (2, 3, 51), (3, 3, 72)])
def test_dry_run_prints_every_run_once_and_writes_nothing(tmp_path, seeds, networks, count):
    commands = dry_run(str(tmp_path / "out"), f"--seeds={seeds}")
    assert len(commands) == count and not (tmp_path / "out").exists()
    assert {c.script for c in commands} <= SCRIPTS
    dirs = [c.get("dir") for c in commands]
    assert len(set(dirs)) == len(dirs) and all(d.startswith(f"{tmp_path}/out/{MLP}/") for d in dirs)
    assert all(c.get("data_path") == "/data" and c.get("use_test") and c.get("dataset") == "FashionMNIST"
               and c.get("no_augment") for c in commands)
    runs = by_dir(commands)
    assert {f"endpoint-{i}" for i in range(1, networks + 1)} <= set(runs) and f"endpoint-{networks + 1}" not in runs
    for k in range(1, seeds + 1):  # seed k's pair: networks k and k mod M + 1
        j = k % networks + 1
        segment = runs[f"segment-{k}"]
        assert segment.get("init_start").endswith(f"/endpoint-{k}/checkpoint-{B}.pt")
        assert segment.get("init_end").endswith(f"/endpoint-{j}/checkpoint-{B}.pt")
        assert [p.split("/")[-2] for p in runs[f"ind-line-{k}"].options["ckpt"]] == [f"standard-{k}", f"standard-{j}"]
        assert [p.split("/")[-2] for p in runs[f"espro-{k}"].options["ckpt"]] == [f"standard-{k}", f"standard-{j}"]
        assert {p.split("/")[-2] for p in runs[f"fge-2B-{k}"].options["ckpt"]} == {f"fge-{k}", f"fge-{j}"}
    assert bash("fashion_tables.sh", tmp_path / "out", "--dry-run").stdout.count("\npython ") == 72  # 3 seeds


def test_the_settings_follow_the_papers_ratios():
    runs = by_dir(dry_run())
    endpoint, fge, standard = runs["endpoint-1"], runs["fge-1"], runs["standard-1"]
    assert (endpoint.get("model"), endpoint.get("epochs"), endpoint.get("lr"), endpoint.get("wd")) == ("MLP", "40", "0.01", "5e-4")
    assert endpoint.get("save_freq") == "8" and endpoint.get("schedule") is None  # the mode-connectivity schedule
    # FGE: VGG16's command, from 0.8 B for 0.2 B at a constant 0.2 x lr, cycles of 2 epochs: 4 snapshots
    assert fge.get("ckpt").endswith("/endpoint-1/checkpoint-32.pt")
    assert (fge.get("epochs"), fge.get("lr_1"), fge.get("lr_2"), fge.get("cycle")) == ("8", "0.002", "0.002", "2")
    assert [p.rsplit("/", 1)[1] for p in runs["fge-2B-1"].options["ckpt"]] == [f"fge-{e}.pt" for e in (33, 35, 37, 39)] * 2
    for budget, epochs in ((1, 40), (2, 80)):  # SSE from scratch, cycles of B/5 from lr
        sse = runs[f"sse-{budget}B-1"]
        assert (sse.get("schedule"), sse.get("epochs"), sse.get("cycle"), sse.get("lr_1")) == ("cosine", str(epochs), "8", "0.01")
    # curves: 3 bends, fixed ends, B epochs at 0.3 x lr
    for name, curve in (("bezier", "Bezier"), ("polychain", "PolyChain")):
        command = runs[f"{name}-1"]
        assert command.target == "train_curve.py" and command.get("curve") == curve and command.get("num_bends") == "3"
        assert command.get("fix_start") and command.get("fix_end") and (command.get("epochs"), command.get("lr")) == ("40", "0.003")
        assert runs[f"eval-{name}-1"].get("ckpt").endswith(f"/{name}-1/checkpoint-40.pt")
    # SWA: VGG16's start at 0.8 B + 1 and rate 0.2 x lr_init; 1.5 B continues the 1 B run
    sgd, swa, longer = runs["sgd-1"], runs["swa-1B-1"], runs["swa-1.5B-1"]
    assert sgd.get("swa") is None and sgd.get("epochs") == "40" and sgd.get("lr_init") == "0.01"
    assert (swa.get("swa"), swa.get("swa_start"), swa.get("swa_lr"), swa.get("epochs")) == (True, "33", "0.002", "40")
    assert longer.get("resume").endswith("/swa-1B-1/checkpoint-40.pt") and longer.get("epochs") == "60"
    # the line and its SGD: cosine after 1 warm-up epoch; the subspace Ind by the logit rule
    line = runs["line-1"]
    assert (line.get("shape"), line.get("epochs"), line.get("warmup_epochs"), line.get("beta")) == ("line", "40", "1", "1")
    assert (standard.get("schedule"), standard.get("warmup_epochs"), standard.get("lr")) == ("cosine", "1", "0.01")
    assert runs["ind-line-1"].get("combine") == "logits" and runs["ind-2B-1"].get("combine") is None
    espro = runs["espro-1"]  # 4 vertices, 1 epoch each, the mean of 5 points: 5 x 0.2 x lr, wd / 5, lambda / 5
    assert (espro.get("num_vertices"), espro.get("epochs_per_vertex"), espro.get("lr"), espro.get("volume_reg"),
            espro.get("num_samples")) == ("4", "1", "0.01", "2e-7", "5")
    assert float(espro.get("wd")) == 1e-4
    # SWAG: collected along swa-1B's SWA phase (epochs 33-40: K = 8), ECEs of the SWAG code's 20 bins
    assert (swa.get("swag"), swa.get("max_num_models"), swa.get("ece_bins"), sgd.get("ece_bins")) == (True, "8", "20", "20")
    assert runs["swag-1"].get("ckpt").endswith("/swa-1B-1/swag.pt") and runs["swag-1"].get("no_cov_mat") is None
    assert runs["swag-diag-1"].get("no_cov_mat") and runs["swag-diag-1"].get("ckpt") == runs["swag-1"].get("ckpt")
    # the landscape at SGD's and SWA's solutions and FGE's last snapshot: rays and the Hessian of each
    points = ["sgd-1/checkpoint-40.pt", "swa-1B-1/swa.pt", "fge-1/fge-39.pt"]
    rays = runs["rays-1"]
    assert ["/".join(p.split("/")[-2:]) for p in rays.options["ckpt"]] == points
    assert (rays.get("num_directions"), rays.get("max_distance"), rays.get("wd")) == ("10", "40", "5e-4")
    for name, point in zip(("hessian-sgd-1", "hessian-swa-1B-1", "hessian-fge-1"), points):
        assert runs[name].get("ckpt").endswith("/" + point) and runs[name].get("trace")


def test_printed_flags_parse_with_the_scripts_own_parsers(capsys):
    """Every command goes through its script's parser; eval_ensemble.py's --combine (issue 19) is
    left out where that script does not have it yet."""
    for command in dry_run():
        module = importlib.import_module(command.target[:-3])
        parser = module.build_parser()
        flags = command.flags
        if command.script == "eval_ensemble.py" and "--combine" not in parser._option_string_actions:
            flags = [f for f in flags if not f.startswith("--combine")]
        try:
            parser.parse_args(flags)
        except SystemExit:
            pytest.fail(f"{command.target} rejects `{command.line}`: {capsys.readouterr().err}")


def test_every_checkpoint_read_is_written_by_an_earlier_command():
    assert_every_read_is_written_before(dry_run())


def test_gpus_and_slurm_dry_runs_follow_the_runs_dependencies(tmp_path):
    out = tmp_path / "out"
    commands = [c.line for c in dry_run(str(out))]
    after = waits(commands)
    assert after[f"{out}/{MLP}/swa-1.5B-1"] == {f"{out}/{MLP}/swa-1B-1"}
    assert after[f"{out}/{MLP}/fge-2B-3"] == {f"{out}/{MLP}/fge-3", f"{out}/{MLP}/fge-1"}
    assert after[f"{out}/{MLP}/endpoint-1"] == set()
    gpus = bash("fashion_tables.sh", out, "--data_path=/data", "--gpus", "0,1", "--dry-run")
    assert gpus.returncode == 0, gpus.stderr
    targets = dict(re.findall(r"^(run-\d+):(.*)$", gpus.stdout, re.M))
    numbers = {shlex.split(c)[2][len("--dir="):]: f"run-{i}" for i, c in enumerate(commands, 1)}
    assert len(targets) == len(commands) == 72
    for i, (key, deps) in enumerate(after.items(), 1):
        assert set(targets[f"run-{i}"].split()) == {numbers[d] for d in deps}, key
    slurm = bash("fashion_tables.sh", out, "--data_path=/data", "--slurm", "--dry-run", "--partition", "cpu",
                 "--gpus_per_job", "0")
    assert slurm.returncode == 0, slurm.stderr
    jobs, number = sbatch_lines(slurm.stdout), {}
    assert sorted(jobs) == list(range(1, 73)) and not out.exists()
    for n, (key, deps) in zip(sorted(jobs), after.items()):
        words = jobs[n]
        batch = words.index(os.path.join(ROOT, "scripts", "slurm_job.sh"))
        assert shlex.join(words[batch + 1:]) == commands[n - 1] and "--partition=cpu" in words
        dependency = [w for w in words[1:batch] if w.startswith("--dependency=")]
        expected = ":".join(f"${{JOB_{number[d]}}}" for d in sorted(deps, key=number.get))
        assert dependency == ([f"--dependency=afterok:{expected}"] if deps else []), key
        number[key] = n


def test_started_again_it_skips_the_finished_runs(tmp_path):
    log = tmp_path / "log"
    fake = executable(tmp_path / "python", f'#!/usr/bin/env bash\necho "$*" >> {log}\n'
                      f'echo "$OMP_NUM_THREADS" >> {tmp_path}/threads\n'
                      'for a; do [[ $a == --dir=* ]] && mkdir -p "${a#--dir=}" && echo {} > "${a#--dir=}/summary.json"; done\nexit 0\n')
    out = tmp_path / "out"
    first = bash("fashion_tables.sh", out, "--seeds=1", "--data_path=/data", env={"PYTHON": fake, "OMP_NUM_THREADS": ""})
    assert first.returncode == 0, first.stderr
    assert [line.split()[1:] for line in log.read_text().splitlines()] == \
        [c.flags for c in dry_run(str(out), "--seeds=1")]
    assert set((tmp_path / "threads").read_text().split()) == {"1"}  # one thread a run, unless told otherwise
    second = bash("fashion_tables.sh", out, "--seeds=1", "--data_path=/data", env={"PYTHON": fake})
    assert second.returncode == 0 and second.stdout.count("# done, skipped") == 27
    assert len(log.read_text().splitlines()) == 27


@pytest.mark.parametrize("args", [(), ("/out", "/more"), ("/out", "--seeds=0"), ("/out", "--seeds", "two"),
                                  ("/out", "--seeds"), ("/out", "--bogus"), ("/out", "--gpus", "0", "--slurm")])
def test_usage_mistakes_are_one_error_line(args):
    assert_one_error_line(bash("fashion_tables.sh", *args))


def test_help():
    result = bash("fashion_tables.sh", "--help")
    assert result.returncode == 0 and "fashion_tables.sh OUT_DIR [--seeds N]" in result.stdout
    assert "--slurm" in result.stdout


# --------------------------------------------------------------------------- collect.py --table fashion

def pretend(command: Command) -> dict:
    """A summary.json for ``command``'s run: numbers that differ by run and by seed (k)."""
    name = os.path.basename(command.get("dir"))
    kind, k = name.rsplit("-", 1)
    k = int(k)
    acc = 88.0 + k / 10 + {"endpoint": 0, "fge": 0.5, "standard": 0.1, "ind-2B": 1.0, "fge-2B": 1.2, "sse-1B": 0.3,
                           "sse-2B": 0.8, "ind-line": 1.1, "line": 0.6}.get(kind, 0)
    if command.script == "eval_curve.py":
        peak = {"segment": 40.0, "eval-bezier": 12.5, "eval-polychain": 13.0}[kind] + k
        return {"test_err": {"start": 11.0 + k, "end": 11.5, "min": 10.5, "max": peak},
                "train_loss": {"start": 0.25, "end": 0.2 + k / 10, "min": 0.2, "max": peak / 100}}
    if command.script == "swa.py":
        swa = {"sgd": None, "swa-1B": 88.9, "swa-1.5B": 89.2}[kind]
        return {"sgd_test_acc": 88.0 + k / 10, "sgd_test_nll": 0.35, "swa_test_acc": None if swa is None else swa + k / 10,
                "swa_test_nll": 0.3, "sgd_test_ece": 0.05 + k / 100, "swa_test_ece": None if swa is None else 0.03}
    if command.script == "swag.py":
        return {"swag_acc": 89.5 + k / 10, "swag_nll": {"swag": 0.27, "swag-diag": 0.28}[kind] + k / 100,
                "swag_ece": 0.01 * k, "swa_acc": 89.0, "swa_nll": 0.3, "swa_ece": 0.03}
    if command.script == "rays.py":  # sgd, swa, fge; SWA's NLL width beyond the rays (null)
        return {"width": [10.0 + k, 12.0 + k, 11.0], "nll_width": [20.0, None, 25.0]}
    if command.script == "hessian.py":
        return {"eigenvalues": [{"sgd": 30.0, "swa-1B": 20.0, "fge": 25.0}[kind[len("hessian-"):]] + k],
                "trace": 500.0 - k}
    if command.script == "simplex.py":
        return {"ensemble_acc": 90.0 + k, "ensemble_nll": 0.28, "start_ensemble_acc": 89.0 + k, "start_ensemble_nll": 0.3}
    if command.script == "train_subspace.py":
        return {"midpoint_acc": acc, "midpoint_nll": 0.31, "endpoint_ensemble_acc": acc + 0.5, "endpoint_ensemble_nll": 0.29}
    if command.target == "train_curve.py":
        return {"train_loss": 0.2}
    if command.script == "train.py":
        return {"test_acc": acc, "test_nll": 0.33}
    return {"ens_acc": acc, "ens_nll": 0.3}


def write_pretend_runs(out: str, skip=()) -> None:
    for command in dry_run(out):
        if os.path.basename(command.get("dir")) in skip:
            continue
        os.makedirs(command.get("dir"))
        with open(os.path.join(command.get("dir"), "summary.json"), "w") as f:
            json.dump(pretend(command), f)


def test_collect_fashion_tabulates_means_and_effects_and_writes_json(tmp_path):
    out = tmp_path / "out"
    write_pretend_runs(str(out))
    result = collect(out, "--table", "fashion", "--json", tmp_path / "fashion.json", "--out", tmp_path / "f.md")
    assert result.returncode == 0, result.stderr
    found = tables(result.stdout)
    assert set(found) == {f"Fashion-MNIST {t}, MLP, 3 seeds" for t in ("curves", "ensembles", "averaging", "subspaces",
                                                                        "calibration", "landscape")}
    assert "## Fashion-MNIST curves, MLP, 3 seeds: the worst point along each path (Garipov et al. 2018, Table 1)" \
        in result.stdout
    curves = found["Fashion-MNIST curves, MLP, 3 seeds"]
    # endpoints: the worse end of each segment, 11 + k (k = 1, 2, 3); the Bezier curve's worst, 12.5 + k
    assert curves[0][:3] == ["Endpoints", "13.00 ± 1.00", "0.400 ± 0.100"]
    assert curves[2] == ["Bezier", "14.50 ± 1.00", "0.145 ± 0.010", "+1.50 ± 0.00", "-0.255 ± 0.090",
                         "+0.81 / +0.00", "+2.60 / +0.00"]
    assert curves[1][3] == "+29.00 ± 0.00" and curves[1][5] == "— / —"  # no published segment figure
    ensembles = found["Fashion-MNIST ensembles, MLP, 3 seeds"]
    assert ensembles[0] == ["Ind 1B", "11.80 ± 0.10", "0.330 ± 0.000", "", "", ""]
    assert ensembles[2] == ["FGE 1B", "11.30 ± 0.10", "0.300 ± 0.000", "-0.50 ± 0.00 (vs Ind 1B)", "—", "-2.10"]
    assert ensembles[5][3:] == ["-0.20 ± 0.00 (vs Ind 2B)", "—", "-1.30"] and ensembles[4][5] == "—"  # SSE: none published
    swa = found["Fashion-MNIST averaging, MLP, 3 seeds"]
    assert swa[1] == ["SWA 1B", "10.90 ± 0.10", "0.300 ± 0.000", "-0.90 ± 0.00 (vs SGD 1B)", "-0.34", "-1.36"]
    assert swa[2][4:] == ["-0.39", "-1.72"]
    subspaces = found["Fashion-MNIST subspaces, MLP, 3 seeds"]
    assert subspaces[1][3] == "-0.50 ± 0.00 (vs SGD, the line's schedule)" and subspaces[1][4] == "unconfirmed"
    assert subspaces[5][:4] == ["ESPRO, 2 simplexes", "8.00 ± 1.00", "0.280 ± 0.000",
                                "-1.00 ± 0.00 (vs Ind of 2 SGD (probabilities))"]
    calibration = found["Fashion-MNIST calibration, MLP, 3 seeds"]
    # SGD's ECE 0.05 + k/100; SWAG's NLL 0.27 + k/100 against SGD's 0.35, its ECE 0.01 k
    assert calibration[0][:4] == ["SGD", "11.80 ± 0.10", "0.350 ± 0.000", "0.0700 ± 0.0100"]
    assert calibration[3] == ["SWAG", "10.30 ± 0.10", "0.290 ± 0.010", "0.0200 ± 0.0100", "-0.060 ± 0.010 (vs SGD)",
                              "-0.0500 ± 0.0000 (vs SGD)", "NLL, ECE lower"]
    landscape = found["Fashion-MNIST landscape, MLP, 3 seeds"]
    assert landscape[0][:5] == ["SGD", "12.00 ± 1.00", "20.00 ± 0.00", "32.000 ± 1.000", "498.0 ± 1.0"]
    assert landscape[1][1:3] == ["14.00 ± 1.00", "—"] and landscape[1][5:] == ["+2.00 ± 0.00 (vs SGD)",
                                                                              "-10.000 ± 0.000 (vs SGD)", "wider"]
    assert landscape[2][5] == "-1.00 ± 1.00 (vs SGD)" and landscape[2][7] == "—"
    assert (tmp_path / "f.md").read_text() == result.stdout

    record = json.loads((tmp_path / "fashion.json").read_text())
    assert record["seeds"] == [1, 2, 3] and record["model"] == "MLP"
    [fge] = [r for r in record["tables"]["ensembles"] if r["name"] == "FGE 1B"]
    errors = [100 - (88.0 + k / 10 + 0.5) for k in (1, 2, 3)]
    assert fge["metrics"]["test_err"]["values"] == pytest.approx(errors)
    assert fge["metrics"]["test_err"]["mean"] == pytest.approx(statistics.fmean(errors))
    assert fge["metrics"]["test_err"]["std"] == pytest.approx(statistics.stdev(errors))
    assert fge["effects"]["test_err"]["mean"] == pytest.approx(-0.5) and fge["against"] == "Ind 1B"
    assert fge["effects"]["test_err"]["paper"] == {"CIFAR100": pytest.approx(72.5 - 74.6)}
    [bezier] = [r for r in record["tables"]["curves"] if r["name"] == "Bezier"]
    assert bezier["effects"]["test_err"]["paper"] == {"CIFAR10": pytest.approx(7.75 - 6.94),
                                                      "CIFAR100": pytest.approx(30.1 - 27.5)}


def test_collect_fashion_missing_runs_and_mistakes(tmp_path):
    out = tmp_path / "out"
    write_pretend_runs(str(out), skip={"fge-3", "swa-1B-2", "swa-1.5B-2"})
    result = collect(out, "--table", "fashion")
    assert result.returncode == 0, result.stderr
    found = tables(result.stdout)
    fge = found["Fashion-MNIST ensembles, MLP, 3 seeds"][2]
    assert fge[1] == "11.35 ± 0.07 (n=2)" and fge[3] == "-0.50 ± 0.00 (n=2) (vs Ind 1B)"
    assert found["Fashion-MNIST averaging, MLP, 3 seeds"][1][1] == "10.90 ± 0.14 (n=2)"
    os.makedirs(tmp_path / "nothing-yet")
    empty = collect(tmp_path / "nothing-yet", "--table", "fashion")
    assert empty.returncode == 0 and "0 seeds" in empty.stdout and "—" in empty.stdout
    assert "Fashion-MNIST" not in collect(tmp_path / "nothing-yet").stdout  # --table all: only where its runs are
    wrong = collect(out, "--table", "swa", "--json", tmp_path / "x.json")
    assert wrong.returncode == 2 and wrong.stderr.startswith("error:") and not (tmp_path / "x.json").exists()
    (out / MLP / "sgd-1" / "summary.json").write_text('{"test_acc": 90.0}')  # a run of another script
    bad = collect(out, "--table", "fashion")
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "sgd_test_acc" in bad.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


# --------------------------------------------------------------------------- the verdicts of docs/fashion.md

def effect(values, paper=None, sign=None) -> dict:
    found = {"values": values, "n": len(values), "mean": statistics.fmean(values),
             "std": statistics.stdev(values) if len(values) > 1 else None, "paper": paper or {}}
    return {**found, **({"paper_sign": sign} if sign else {})}


def test_verdicts_judge_sign_and_spread_against_the_papers():
    from reports import study

    def row(name, against, **effects):
        return {"name": name, "against": against, "metrics": {}, "effects": effects}

    found = {"seeds": [1, 2, 3], "tables": {
        "ensembles": [row("FGE 1B", "Ind 1B", test_err=effect([-0.5, -0.7, -0.6], {"CIFAR100": -2.1})),  # 6 std
                      row("FGE 2B", "Ind 2B", test_err=effect([-0.1, 0.2, -0.3], {"CIFAR100": -1.3}))],  # noise
        "averaging": [row("SWA 1B", "SGD 1B", test_err=effect([0.5, 0.6, 0.7], {"CIFAR10": -0.34}))],  # opposite
        "curves": [row("Bezier", "Endpoints", train_loss=effect([0.01, -0.01, 0.0], {"CIFAR10": 0.0}),  # nil, nil
                       test_err=effect([1.0, 1.0, 1.0], {"CIFAR10": 0.81}))],  # std 0: separated
        "calibration": [row("SWAG", "SGD", test_ece=effect([0.01, 0.02, 0.03], sign="NLL, ECE lower"))],
        "subspaces": [row("line, midpoint", "SGD, the line's schedule", test_err=effect([-1.0, -2.0, -3.0])),
                      row("line, its endpoints' ensemble", "Ind", test_err=effect([-1.0, -1.1, -0.9]))],  # no claim
    }}
    rows = {(r[0], r[1]): r for r in study.verdicts(found)}
    assert rows[("FGE 1B − Ind 1B", "test err")][2:] == ["-0.60 ± 0.10", "6.0", "CIFAR100: -2.10", "reproduced"]
    assert rows[("FGE 2B − Ind 2B", "test err")][3:] == ["0.3", "CIFAR100: -1.30", "same sign, within noise"]
    assert rows[("SWA 1B − SGD 1B", "test err")][-1] == "did not reproduce: opposite sign"
    assert rows[("Bezier − Endpoints", "train loss")][-1] == "reproduced: no change"
    assert rows[("Bezier − Endpoints", "test err")][3:] == ["∞", "CIFAR10: +0.81", "reproduced"]
    assert rows[("SWAG − SGD", "test ece")][4:] == ["lower (in figures)", "did not reproduce: opposite sign"]
    assert rows[("line, midpoint − SGD, the line's schedule", "test err")][-1] == "reproduced"  # 2.0 std
    assert len(rows) == 7  # the endpoints' ensemble: no published direction, no verdict
    headline = study.headline({"fashion": found})
    assert "4 of 7 published effects reproduced" in headline and "SWA 1B − SGD 1B (test err) +0.60 ± 0.10" in headline
