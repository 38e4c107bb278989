"""scripts/demo.sh in --dry-run mode (its commands parse), and demo_report.py on runs the test writes."""
import importlib
import json
import os
import shlex
import subprocess
import sys

import numpy as np

from conftest import ROOT, run_here, run_script, user_error

sys.path.insert(0, os.path.join(ROOT, "scripts"))


def demo_commands(out: str) -> list[list[str]]:
    result = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh"), out, "--dry-run"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHON": "python"})
    assert result.returncode == 0, result.stderr
    return [shlex.split(line)[1:] for line in result.stdout.splitlines() if line.startswith("python ")]


def test_demo_dry_run_commands_parse(tmp_path):
    commands = demo_commands(str(tmp_path))
    scripts = [c[0] for c in commands]
    assert scripts == ["train.py", "train.py", "eval_curve.py", "align.py", "eval_curve.py", "train.py",
                       "eval_curve.py", "plane.py",
                       "train.py", "train.py", "eval_ensemble.py", "fge.py", "swa.py", "train_subspace.py",
                       "train.py", "simplex.py", "scripts/demo_report.py"]
    assert not os.listdir(tmp_path)  # a dry run writes nothing
    for script, *flags in commands[:-1]:
        target = "train_curve" if script == "train.py" and "--curve=Bezier" in flags else script[:-3]
        importlib.import_module(target).build_parser().parse_args(flags)  # exits 2 on a bad flag
        assert all(f.startswith(f"--dir={tmp_path}") for f in flags if f.startswith("--dir"))


def _write_run(folder, name, summary):
    os.makedirs(folder / name, exist_ok=True)
    (folder / name / "summary.json").write_text(json.dumps(summary))


def test_demo_report_table_and_summary(tmp_path):
    for seed, acc in ((1, 98.0), (2, 97.5)):
        _write_run(tmp_path, f"endpoint-{seed}", {"test_acc": acc, "test_nll": 0.1})
    ts = np.linspace(0, 1, 5)
    _write_run(tmp_path, "aligned", {"distance_before": 40.0, "distance_after": 30.0})
    _write_run(tmp_path, "segment-aligned", {"test_err": {"max": 20.0}, "test_nll": {"max": 0.5}})
    for name, peak in (("segment", 80.0), ("curve-eval", 3.0)):
        err = np.array([2.0, 2.5, peak, 2.5, 2.5])
        _write_run(tmp_path, name, {"test_err": {"max": peak}, "test_nll": {"max": 1.0}})
        np.savez(tmp_path / name / "curve.npz", ts=ts, te_err=err, tr_loss=err / 10)
    # part 2, noisy labels: every method's accuracy, NLL and ECE
    for seed, acc in ((1, 90.0), (2, 91.0)):
        _write_run(tmp_path, f"sgd-{seed}", {"test_acc": acc, "test_nll": 0.3, "test_ece": 0.05})
        (tmp_path / f"sgd-{seed}" / "args.json").write_text(json.dumps({"label_noise": 0.2}))
    _write_run(tmp_path, "fge", {"ens_acc": 89.0, "ens_nll": 0.33, "ens_ece": 0.05, "ensemble_size": 2})
    (tmp_path / "fge" / "metrics.csv").write_text(
        "epoch,snapshot,test_acc,ens_acc\n1,1,88.0,88.0\n2,0,87.0,\n3,1,88.2,89.0\n")
    _write_run(tmp_path, "swa", {"swa_test_acc": 90.5, "swa_test_nll": 0.32, "swa_test_ece": 0.04, "swa_n": 5})
    _write_run(tmp_path, "ind", {"ens_acc": 94.0, "ens_nll": 0.25, "ens_ece": 0.08})
    _write_run(tmp_path, "line", {"midpoint_acc": 96.0, "midpoint_nll": 0.27, "midpoint_ece": 0.1,
                                  "endpoint_ensemble_acc": 96.5, "endpoint_ensemble_nll": 0.26,
                                  "endpoint_ensemble_ece": 0.12})
    _write_run(tmp_path, "one", {"test_acc": 92.5, "test_nll": 0.28, "test_ece": 0.03})
    (tmp_path / "line" / "subspace.csv").write_text(
        "point,alpha,test_acc,pair_acc\nalpha=0,0.0,94.0,96.5\nalpha=0.5,0.5,96.0,96.0\nalpha=1,1.0,95.0,96.5\n")
    _write_run(tmp_path, "espro", {"ensemble_acc": 94.5, "ensemble_nll": 0.24, "ensemble_ece": 0.07,
                                   "ensemble_acc_by_simplexes": [90.5, 94.5], "num_simplexes": 2,
                                   "num_vertices": 3, "num_test_samples": 5, "volume": [1.0, 2.0]})
    point = {"train_loss": 0.1, "test_err": 2.0}
    _write_run(tmp_path, "plane", {"points": {"segment t=0.5": point, "curve t=0.5": point}, "dx": 4.0, "dy": 1.0})
    grid = np.stack(np.meshgrid(np.linspace(0, 4, 3), np.linspace(0, 1, 3), indexing="ij"), -1)
    np.savez(tmp_path / "plane" / "plane.npz", grid=grid, tr_loss=np.ones((3, 3)), te_err=np.arange(9.0).reshape(3, 3),
             bend_coordinates=np.array([[0, 0], [2, 1], [4, 0.0]]), curve_coordinates=np.array([[0, 0], [4, 0.0]]))
    result = run_script("scripts/demo_report.py", tmp_path, "--seconds=125")
    assert "Bezier curve, worst point" in result.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["endpoint_test_err"] == [2.0, 2.5]
    assert summary["segment_max_test_err"] == 80.0 and summary["curve_max_test_err"] == 3.0
    assert summary["segment_barrier"] == 77.5 and summary["curve_barrier"] == 0.5
    assert summary["aligned_barrier"] == 17.5 and summary["aligned_distance"] == [40.0, 30.0]
    assert [round(v["test_err"], 6) for v in summary["noisy_sgd"]] == [10.0, 9.0]
    assert round(summary["noisy_fge"]["test_err"], 6) == 11.0 and round(summary["noisy_swa"]["test_err"], 6) == 9.5
    assert round(summary["noisy_line_midpoint"]["test_err"], 6) == 4.0 and summary["noisy_ind"]["test_ece"] == 0.08
    assert round(summary["noisy_espro"]["test_err"], 6) == 5.5 and round(summary["spro_test_err"], 6) == 9.5
    assert round(summary["noisy_one"]["test_err"], 6) == 7.5 and summary["label_noise"] == 0.2 and "Line: its midpoint" in result.stdout
    for picture in ("curve_vs_segment.png", "fge_ensemble.png", "noisy_labels.png"):
        assert (tmp_path / picture).stat().st_size > 0, picture
    # figures.json holds what the README is written from
    import readme

    record = json.loads((tmp_path / "figures.json").read_text())
    blocks = readme.render(record)
    assert "| Straight segment, worst point" in blocks["demo-table"] and "2 min 05 s" in blocks["noisy-table"]
    assert "| Straight segment after weight matching, worst point" in blocks["demo-table"]
    assert "| Line: its midpoint" in blocks["noisy-table"] and "the line's midpoint is" in blocks["noisy-table"]
    text = "a\n<!-- generated: demo-table -->\nold\n<!-- end: demo-table -->\nb\n"
    assert readme.update(text, blocks) == "a\n<!-- generated: demo-table -->\n" + blocks["demo-table"] + \
        "<!-- end: demo-table -->\nb\n"
    assert record["machine"]["jobs"] == 1 and "runs at a time" not in blocks["noisy-table"]

    # --jobs: the report records how the runs shared the cores; --show prints the tables, writes nothing
    printed = run_here("demo_report.py", tmp_path, "--started=0", "--jobs=2")
    record = json.loads((tmp_path / "figures.json").read_text())
    assert record["machine"]["jobs"] == 2 and record["seconds"] > 10 ** 9  # since 1970
    assert "2 runs at a time" in readme.render(record)["noisy-table"]
    written = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir() if p.is_file()}
    assert run_here("demo_report.py", tmp_path, "--show") == printed == result.stdout
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir() if p.is_file()} == written


def test_demo_report_show_before_a_report_is_one_error_line(tmp_path, capsys):
    import demo_report

    assert "no report yet" in user_error(capsys, demo_report.main, tmp_path, "--show")
