"""scripts/bench.py runs and writes every figure. No timed assertions: the bench is the measure."""
import json
import math

from conftest import run_script

RATIOS = ["pipeline_speedup", "train_speedup_convfc", "amp_speedup_vgg16", "curve_overhead_vgg16",
          "line_overhead_vgg16", "simplex_overhead_vgg16",
          "eval_curve_speedup", "matmul_gflops_fp32", "matmul_gflops_bf16", "fraction_of_peak_vgg16"]
ABSOLUTE = ["pipeline_images_per_s_ours", "pipeline_images_per_s_reference_workers0",
            "pipeline_images_per_s_reference_workers2", "train_images_per_s_ours_amp_channels_last",
            "train_images_per_s_reference_workers0", "vgg16_step_s_fp32", "vgg16_step_s_amp_channels_last",
            "vgg16_step_s_curve_amp_channels_last", "vgg16_step_s_line_amp_channels_last",
            "vgg16_step_s_simplex_amp_channels_last", "vgg16_training_gflops_fp32",
            "curve_point_s_ours_amp_channels_last", "curve_point_s_reference_workers0",
            "data_parallel_images_per_s_1_process", "data_parallel_images_per_s_2_process",
            "data_parallel_speedup_2_processes"]


def test_bench_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    result = run_script("scripts/bench.py", "--tiny", f"--out={out}", "--device=cpu", timeout=600)
    figures = json.loads(out.read_text())
    for key in RATIOS + ABSOLUTE:
        assert isinstance(figures[key], float) and math.isfinite(figures[key]) and figures[key] > 0, key
    assert figures["device"] and figures["threads"] >= 1 and figures["torch"]
    assert set(figures["goals"]) <= set(RATIOS)
    assert all(key in result.stdout for key in figures["goals"])  # the summary table
