"""scripts/bench.py runs and writes every figure. No timed assertions: the bench is the measure."""
import json
import math

import pytest
import torch

from benchmarks.epochs import warm_up_images
from benchmarks.main import main
from benchmarks.reference import reference_bn_update, reference_moving_average
from benchmarks.timing import paired_ratio, race_rounds
from conftest import run_script, user_error
from runtime.processes import emulated_on_this_cpu

RATIOS = ["pipeline_speedup", "train_speedup_convfc", "amp_speedup_vgg16", "curve_overhead_vgg16",
          "line_overhead_vgg16", "simplex_overhead_vgg16", "line_overhead_vgg16_of_best",
          "eval_curve_speedup", "matmul_gflops_fp32", "matmul_gflops_bf16", "fraction_of_peak_vgg16",
          "hvp_over_train_step", "hvp_over_train_step_recomputed", "swag_wrn28x10_copies_of_weights",
          "swag_wrn28x10_peak_copies_of_weights", "swag_wrn28x10_sample_peak_copies_of_weights",
          "fashion_epoch_speedup", "preresnet164_epoch_speedup", "wrn28x10_epoch_speedup",
          "wrn28x10_fraction_of_bf16_peak", "preresnet164_fraction_of_bf16_peak", "fge_epoch_speedup",
          "swa_epoch_speedup"]
ABSOLUTE = ["pipeline_images_per_s_ours", "pipeline_images_per_s_reference_workers0",
            "pipeline_images_per_s_reference_workers2", "train_images_per_s_ours_amp_channels_last",
            "train_images_per_s_reference_workers0", "vgg16_step_s_fp32", "vgg16_step_s_amp_channels_last",
 "vgg16_training_gflops_fp32",
            "curve_point_s_ours_amp_channels_last", "curve_point_s_reference_workers0",
            "data_parallel_images_per_s_1_process", "data_parallel_images_per_s_2_process",
            "data_parallel_speedup_2_processes", "weight_matching_vgg16_s", "weight_matching_vgg16_s_1_thread",
            "weight_matching_vgg16_sweeps", "weight_matching_vgg16_groups_s", "swag_wrn28x10_bytes",
            "swag_wrn28x10_peak_bytes", "swag_wrn28x10_sample_peak_bytes", "swag_wrn28x10_weights_bytes",
            "fashion_epoch_s_ours_amp_channels_last", "fashion_epoch_s_ours_fp32_channels_last",
            "fashion_epoch_s_reference_workers0", "fashion_epoch_s_reference_workers2",
            "fashion_epoch_images_per_s_ours", "wrn28x10_training_gflops", "wrn28x10_training_gflop_per_image",
            "preresnet164_epoch_s_reference_workers0", "preresnet164_epoch_s_ours_amp_channels_last",
            "fge_epoch_s_reference_workers0", "fge_epoch_s_ours_fp32_channels_last", "swa_epoch_s_ours_amp_channels_last"]


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
    assert figures["wrn28x10_model"] == figures["fge_swa_model"] == "MLP"  # --tiny's stand-in
    # the overheads at this machine's options: --amp, or fp32 where the CPU emulates bfloat16
    options = figures["vgg16_overhead_options"]
    assert options == ("fp32_channels_last" if emulated_on_this_cpu("bfloat16") else "amp_channels_last")
    assert all(figures[f"vgg16_step_s_{kind}_{options}"] > 0 for kind in ("curve", "line", "simplex"))
    assert {figures["preresnet164_fastest_options"], figures["swa_fastest_options"]} <= {"amp_channels_last",
                                                                                         "fp32_channels_last"}


def test_bench_only_one_figure_and_the_profiles(tmp_path):
    out = tmp_path / "bench.json"
    main(["--tiny", "--only=matmul", f"--out={out}", "--device=cpu", "--profile"])
    figures = json.loads(out.read_text())
    assert figures["matmul_gflops_fp32"] > 0 and "pipeline_speedup" not in figures and figures["goals"] == {}
    profiles = (tmp_path / "bench-profile.txt").read_text()
    assert profiles.count("# ConvFC step") == 4 and "line_amp_channels_last" in profiles
    assert "aten::convolution_backward" in profiles  # the ops, by their own time


def test_paired_ratio_is_the_median_of_the_rounds_ratios():
    """Each round's ratio, then their median: a load that drifts between rounds cancels, and one
    round that a burst hit does not count; the ratio of the best times would be 0.9 here."""
    times = {"plain": [1.0, 2.0, 4.0, 1.5, 3.0], "line": [1.1, 2.2, 4.4, 0.9, 3.3]}
    assert math.isclose(paired_ratio(times, "line", "plain"), 1.1)
    assert math.isclose(paired_ratio({"k": [5.5, 11.0, 22.0], "plain": [1.0, 2.0, 4.0]}, "k", "plain", 5), 1.1)


def test_a_race_warms_each_contender_up_once_then_times_it_each_round():
    calls = []
    contenders = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = race_rounds(contenders, 2, torch.device("cpu"), warm_ups={"b": lambda: calls.append("b warm")})
    assert calls == ["a", "b warm", "a", "b", "a", "b"] and all(len(t) == 2 for t in times.values())


def test_the_original_bn_update_is_the_mean_over_its_batches():
    """swa's bn_update (momentum b / (n + b) at each batch) leaves each running mean at the mean of
    the batches' means weighted by their sizes: computed here directly from the inputs of a
    BatchNorm that sees the images as they are; the momentum is put back."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    model[0].running_mean.fill_(5.0)
    batches = [torch.randn(n, 3, 4, 4) + 2 for n in (8, 8, 3)]
    reference_bn_update([(x, None) for x in batches], model, torch.device("cpu"))
    expected = sum(x.mean((0, 2, 3)) * len(x) for x in batches) / sum(len(x) for x in batches)
    assert torch.allclose(model[0].running_mean, expected, atol=1e-6) and model[0].momentum == 0.1


def test_the_original_moving_average_is_the_mean_of_the_models():
    """moving_average(average, model, 1 / (n + 1)) after each of n models: their plain mean."""
    nets = [torch.nn.Linear(3, 2) for _ in range(3)]
    average = torch.nn.Linear(3, 2)
    average.load_state_dict(nets[0].state_dict())
    for n, net in enumerate(nets[1:], start=1):
        reference_moving_average(average, net, 1.0 / (n + 1))
    expected = torch.stack([net.weight.detach() for net in nets]).mean(0)
    assert torch.allclose(average.weight, expected, atol=1e-6)


@pytest.mark.parametrize("argv, said", [(["--device=gpu"], "--device gpu"), (["--only=everything"], "--only"),
                                        (["--device=cuda:7"] if not torch.cuda.is_available() else ["--bogus"], "--"),
                                        ([], "--out")])
def test_bad_input_is_one_error_line(capsys, tmp_path, argv, said):
    out = [f"--out={tmp_path / 'bench.json'}"] if argv else []
    assert said in user_error(capsys, main, "--tiny", *argv, *out)
    assert not (tmp_path / "bench.json").exists()


def test_a_warm_up_meets_every_batch_shape_of_the_epoch():
    """2 full batches and the epoch's short last one (CIFAR's 50,000 and 10,000 images end with 80
    and 16), one full batch in a small epoch, never more than the epoch."""
    assert [warm_up_images(n) for n in (50000, 10000, 512, 640, 64)] == [256 + 80, 256 + 16, 128, 128, 64]
