"""scripts/bench.py runs and writes every figure. No timed assertions: the bench is the measure."""
import importlib.util
import json
import math
import os

from conftest import ROOT, run_script

RATIOS = ["pipeline_speedup", "train_speedup_convfc", "amp_speedup_vgg16", "curve_overhead_vgg16",
          "line_overhead_vgg16", "simplex_overhead_vgg16", "line_overhead_vgg16_of_best",
          "eval_curve_speedup", "matmul_gflops_fp32", "matmul_gflops_bf16", "fraction_of_peak_vgg16",
          "hvp_over_train_step", "hvp_over_train_step_recomputed", "swag_wrn28x10_copies_of_weights",
          "swag_wrn28x10_peak_copies_of_weights", "swag_wrn28x10_sample_peak_copies_of_weights",
          "fashion_epoch_speedup"]
ABSOLUTE = ["pipeline_images_per_s_ours", "pipeline_images_per_s_reference_workers0",
            "pipeline_images_per_s_reference_workers2", "train_images_per_s_ours_amp_channels_last",
            "train_images_per_s_reference_workers0", "vgg16_step_s_fp32", "vgg16_step_s_amp_channels_last",
            "vgg16_step_s_curve_amp_channels_last", "vgg16_step_s_line_amp_channels_last",
            "vgg16_step_s_simplex_amp_channels_last", "vgg16_training_gflops_fp32",
            "curve_point_s_ours_amp_channels_last", "curve_point_s_reference_workers0",
            "data_parallel_images_per_s_1_process", "data_parallel_images_per_s_2_process",
            "data_parallel_speedup_2_processes", "weight_matching_vgg16_s", "weight_matching_vgg16_s_1_thread",
            "weight_matching_vgg16_sweeps", "weight_matching_vgg16_groups_s", "swag_wrn28x10_bytes",
            "swag_wrn28x10_peak_bytes", "swag_wrn28x10_sample_peak_bytes", "swag_wrn28x10_weights_bytes",
            "fashion_epoch_s_ours_amp_channels_last", "fashion_epoch_s_ours_fp32_channels_last",
            "fashion_epoch_s_reference_workers0", "fashion_epoch_s_reference_workers2",
            "fashion_epoch_images_per_s_ours"]


def test_bench_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    result = run_script("scripts/bench.py", "--tiny", f"--out={out}", "--device=cpu", timeout=600)
    figures = json.loads(out.read_text())
    for key in RATIOS + ABSOLUTE:
        assert isinstance(figures[key], float) and math.isfinite(figures[key]) and figures[key] > 0, key
    assert figures["device"] and figures["threads"] >= 1 and figures["torch"]
    assert set(figures["goals"]) <= set(RATIOS + ["weight_matching_vgg16_s"])
    assert all(key in result.stdout for key in figures["goals"])  # the summary table
    assert figures["fashion_model"] and figures["fashion_fastest_options"] in ("fp32_channels_last", "amp_channels_last",
                                                                      "fp32_channels_last_one_thread")


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", os.path.join(ROOT, "scripts", "bench.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_only_one_figure(tmp_path):
    out = tmp_path / "bench.json"
    load_bench().main(["--tiny", "--only=matmul", f"--out={out}", "--device=cpu"])
    figures = json.loads(out.read_text())
    assert figures["matmul_gflops_fp32"] > 0 and "pipeline_speedup" not in figures and figures["goals"] == {}


def test_paired_ratio_is_the_median_of_the_rounds_ratios():
    """Each round's ratio, then their median: a load that drifts between rounds cancels, and one
    round that a burst hit does not count; the ratio of the best times would be 0.9 here."""
    bench = load_bench()
    times = {"plain": [1.0, 2.0, 4.0, 1.5, 3.0], "line": [1.1, 2.2, 4.4, 0.9, 3.3]}
    assert math.isclose(bench.paired_ratio(times, "line", "plain"), 1.1)
    assert math.isclose(bench.paired_ratio({"k": [5.5, 11.0, 22.0], "plain": [1.0, 2.0, 4.0]}, "k", "plain", 5), 1.1)
