"""scripts/alignment_table.sh (its dry runs: every command and setting, the runs' order, bad options) and
collect.py --table alignment on pretend runs (numbers in, the table and the JSON out). Fast: nothing is
trained."""
from __future__ import annotations

import importlib
import json
import os
import statistics

import pytest

from test_scripts import Command, assert_every_read_is_written_before, collect, study_dry_run, tables
from test_submit import assert_one_error_line, bash, waits

B = 40
PER_MODEL = {"MLP3x512": 33, "ResNet20": 30, "ResNet20x4": 30}  # 3 endpoints, 10 (MLP: 11) runs a pair


def dry_run(out: str = "/out", *options: str) -> tuple[Command, ...]:
    return study_dry_run("alignment_table.sh", out, *options)


def by_dir(commands) -> dict[str, Command]:
    return {"/".join(c.get("dir").split("/")[-2:]): c for c in commands}


def test_dry_run_prints_every_run_once_and_writes_nothing(tmp_path):
    commands = dry_run(str(tmp_path / "out"))
    assert len(commands) == sum(PER_MODEL.values()) and not (tmp_path / "out").exists()
    assert {c.script for c in commands} == {"train.py", "eval_curve.py", "align.py"}
    dirs = [c.get("dir") for c in commands]
    assert len(set(dirs)) == len(dirs)
    for model, count in PER_MODEL.items():
        assert len([d for d in dirs if d.startswith(f"{tmp_path}/out/alignment/FashionMNIST/{model}/")]) == count
        assert len(dry_run(str(tmp_path / "out"), f"--models={model}")) == count
    assert all(c.get("data_path") == "/data" and c.get("use_test") and c.get("dataset") == "FashionMNIST"
               for c in commands)
    # the MLP without augmentation (as fashion_tables.sh's), the ResNets with the dataset's crops and flips
    assert all(bool(c.get("no_augment")) == ("/MLP3x512/" in c.get("dir")) for c in commands)


def test_pairs_alignment_and_curves():
    runs = by_dir(dry_run())
    for model in PER_MODEL:
        endpoint = runs[f"{model}/endpoint-1"]
        assert (endpoint.get("model"), endpoint.get("epochs"), endpoint.get("lr"), endpoint.get("wd")) == \
            (model, "40", "0.01", "5e-4")
        for k in (1, 2, 3):  # pair k: networks k and k mod 3 + 1
            a, b = (f"/{model}/endpoint-{i}/checkpoint-{B}.pt" for i in (k, k % 3 + 1))
            segment = runs[f"{model}/segment-{k}"]
            assert segment.get("init_start").endswith(a) and segment.get("init_end").endswith(b)
            for method in ("weights", "activations"):
                align = runs[f"{model}/aligned-{method}-{k}"]
                assert align.get("ckpt_a").endswith(a) and align.get("ckpt_b").endswith(b)
                assert align.get("method") == method
                aligned = runs[f"{model}/segment-{method}-{k}"]
                assert aligned.get("init_start").endswith(a)
                assert aligned.get("init_end") == f"{align.get('dir')}/aligned.pt"
            repair = runs.get(f"{model}/segment-repair-{k}")
            assert (repair is not None) == (model == "MLP3x512")  # BatchNorm models recompute it instead
            if repair:
                assert repair.get("repair") and repair.get("init_end").endswith(f"/aligned-weights-{k}/aligned.pt")
            bezier, matched = runs[f"{model}/bezier-{k}"], runs[f"{model}/bezier-weights-{k}"]
            assert bezier.target == "train_curve.py" and bezier.get("init_end").endswith(b)
            assert matched.get("init_end").endswith(f"/aligned-weights-{k}/aligned.pt")
            assert (bezier.get("epochs"), bezier.get("lr"), bezier.get("num_bends")) == ("20", "0.003", "3")
            assert runs[f"{model}/eval-bezier-weights-{k}"].get("ckpt").endswith(f"/bezier-weights-{k}/checkpoint-20.pt")


def test_printed_flags_parse_with_the_scripts_own_parsers(capsys):
    for command in dry_run():
        try:
            importlib.import_module(command.target[:-3]).build_parser().parse_args(command.flags)
        except SystemExit:
            pytest.fail(f"{command.target} rejects `{command.line}`: {capsys.readouterr().err}")


def test_every_checkpoint_read_is_written_by_an_earlier_command_and_waited_for():
    assert_every_read_is_written_before(dry_run())
    after = waits([c.line for c in dry_run()])
    folder = "/out/alignment/FashionMNIST/MLP3x512"
    assert after[f"{folder}/segment-repair-2"] == {f"{folder}/endpoint-2", f"{folder}/aligned-weights-2"}
    assert after[f"{folder}/aligned-weights-3"] == {f"{folder}/endpoint-3", f"{folder}/endpoint-1"}


@pytest.mark.parametrize("args", [(), ("/out", "/more"), ("/out", "--models=VGG16"), ("/out", "--models"),
                                  ("/out", "--bogus")])
def test_usage_mistakes_are_one_error_line(args):
    assert_one_error_line(bash("alignment_table.sh", *args))


# --------------------------------------------------------------------------- collect.py --table alignment

def pretend(command: Command) -> dict | None:
    """A summary.json for ``command``'s run: barriers that differ by path and by pair (k)."""
    name = os.path.basename(command.get("dir"))
    kind, k = name.rsplit("-", 1)
    k = int(k)
    if command.script == "align.py":
        return {"distance_before": 40.0 + k, "distance_after": 30.0 + k}
    if command.script != "eval_curve.py":
        return None
    peak = {"segment": 60.0, "segment-weights": 20.0, "segment-activations": 21.0, "segment-repair": 14.0,
            "eval-bezier": 13.0, "eval-bezier-weights": 12.5}[kind] + k
    return {"test_err": {"start": 10.0 + k, "end": 11.0, "max": peak},
            "train_loss": {"start": 0.2, "end": 0.1 * k, "max": peak / 100}, "length": 40.0 + k}


def test_collect_alignment_tabulates_barriers_and_writes_json(tmp_path):
    out = tmp_path / "out"
    for command in dry_run(str(out), "--models=MLP3x512"):
        summary = pretend(command)
        os.makedirs(command.get("dir"))
        if summary is not None:
            with open(os.path.join(command.get("dir"), "summary.json"), "w") as f:
                json.dump(summary, f)
    result = collect(out, "--table", "alignment", "--json", tmp_path / "a.json")
    assert result.returncode == 0, result.stderr
    [rows] = tables(result.stdout).values()
    assert "Alignment, Fashion-MNIST, MLP3x512, 3 pairs" in result.stdout
    # the worse endpoint: max(10 + k, 11) = 11, 12, 13, the unaligned barrier 60 + k minus that; in train loss
    # (60 + k) / 100 - max(0.2, 0.1 k): 0.41, 0.42, 0.33
    assert rows[0][:5] == ["segment, before alignment", "62.00 ± 1.00", "50.00 ± 0.00", "0.387 ± 0.049", "42.0 ± 1.0"]
    assert rows[1][2] == "10.00 ± 0.00" and rows[1][5] == "-40.00 ± 0.00 (vs segment, before alignment)"
    assert rows[3][0] == "segment, weight matching + REPAIR" and rows[3][2] == "4.00 ± 0.00"
    assert rows[5][5] == "-0.50 ± 0.00 (vs Bezier, unaligned ends)"
    assert "42.0 ± 1.0 before weight matching, 32.0 ± 1.0 after" in result.stdout
    record = json.loads((tmp_path / "a.json").read_text())
    mlp = record["models"]["MLP3x512"]
    assert mlp["pairs"] == [1, 2, 3] and list(record["models"]) == ["MLP3x512"]
    barrier = mlp["rows"][0]["metrics"]["barrier"]
    assert barrier["values"] == [50.0, 50.0, 50.0] and barrier["std"] == statistics.stdev([50.0] * 3)
    # a run of another script where a segment should be: one error line
    (out / "alignment/FashionMNIST/MLP3x512/segment-1/summary.json").write_text('{"test_acc": 90.0}')
    assert_one_error_line(collect(out, "--table", "alignment"))
