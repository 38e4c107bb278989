"""The README's figures, captions and pictures, from the demo's record docs/demo.json (maintainers).

    python scripts/readme.py                    # README.md and docs/*.png from docs/demo.json
    python scripts/readme.py --from runs/demo   # first record a demo run's figures as docs/demo.json

``make readme`` is the second, after ``make demo``: the README's numbers are the code's, and the
demo itself never touches tracked files. The README holds each generated part between
``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``;
``render`` makes them from a record, and tests/test_readme.py fails when the README's
parts differ from what docs/demo.json gives.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np
from tabulate import tabulate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from reports import demo as demo_report  # noqa: E402
from reports.pages import update  # noqa: E402

RECORD = os.path.join(ROOT, "docs", "demo.json")
README = os.path.join(ROOT, "README.md")


def threads(m: dict) -> str:
    """How the demo's runs shared the cores: one after the other, or ``make demo``'s --jobs N at a time."""
    each = f"{m['threads']} torch thread{'s' * (m['threads'] != 1)}"
    if m.get("jobs", 1) > 1:
        return f"{m['cores']} cores; {m['jobs']} runs at a time, {each} each"
    return f"{m['cores']} cores, {each}"


def render(record: dict) -> dict[str, str]:
    """The README's generated parts, by name."""
    f, m, p = record["figures"], record["machine"], record["plane"]["points"]
    worse = max(f["endpoint_test_err"])
    rows = [[name, f"{err:.2f}", f"{nll:.3f}"] for name, err, nll in demo_report.table(record)]
    took = ""
    if record.get("seconds"):
        minutes, seconds = divmod(round(record["seconds"]), 60)
        took = f" `make demo` took {minutes} min {seconds:02d} s there, once `.venv` existed."
    blocks = {
        "demo-caption": (
            f"*From `make demo`: two ConvFC networks trained on DIGITS from different seeds "
            f"({f['endpoint_test_err'][0]:.2f}% and {f['endpoint_test_err'][1]:.2f}% test error). Along the "
            f"straight segment between them the error reaches {f['segment_max_test_err']:.1f}%; along a Bezier "
            f"curve whose middle bend was trained for 10 epochs it never exceeds {f['curve_max_test_err']:.2f}%.*"),
        "demo-table": (
            tabulate(rows, ["path (ConvFC on DIGITS)", "test error %", "test NLL"], tablefmt="github",
                     colalign=("left", "right", "right"), disable_numparse=True)  # "30.00", not "30"
            + f"\n\nThe segment's barrier (its worst error minus the worse endpoint's, {worse:.2f}%) is "
            f"{f['segment_barrier']:.1f} points; once the second network's hidden units are permuted to match "
            f"the first's (weight matching, the distance between them {f['aligned_distance'][0]:.1f} before and "
            f"{f['aligned_distance'][1]:.1f} after), {f['aligned_barrier']:.1f}; the curve's {f['curve_barrier']:.1f}."),
        "noisy-table": (
            tabulate([[name, f"{err:.2f}", f"{nll:.3f}", f"{ece:.3f}"] for name, err, nll, ece in
                      demo_report.noisy_table(record)],
                     [f"method (ResNet20 on DIGITS, {demo_report.noise_label(record)})", "test error %",
                      "test NLL", "test ECE"], tablefmt="github", colalign=("left", "right", "right", "right"),
                     disable_numparse=True)
            + f"\n\n{noisy_findings(f)} Measured on an {m['cpu']} ({threads(m)}), torch {m['torch']}, "
            f"Python {m['python']}, on {m['date']}.{took} DIGITS' test set has 360 "
            f"images, so one image is 0.28 points. Floating point rounds differently on another CPU, and "
            f"training carries the difference on: on an Intel Xeon the same demo moved figures by up to 19 "
            f"test images (5.3 points; the segment's worst point 86.39% against 81.11%)."),
        "plane-caption": (
            f"*Train loss (with the L2 term) and test error in the plane through the three bends of the demo's "
            f"Bezier curve, as in the paper's first figure. The straight segment between the end bends (dashed) "
            f"crosses a ridge: at its midpoint the train loss is {p['segment t=0.5']['train_loss']:.2f} and the "
            f"test error {p['segment t=0.5']['test_err']:.1f}%. The curve (solid) goes around it through the "
            f"valley: train loss {p['curve t=0.5']['train_loss']:.2f} and test error "
            f"{p['curve t=0.5']['test_err']:.2f}% at t = 0.5. The middle bend (diamond) is a Bezier control "
            f"point, off the curve. The middle bend lies {record['plane']['dy']:.1f} from the segment, the end "
            f"bends {record['plane']['dx']:.1f} apart.*"),
    }
    return {name: text + "\n" for name, text in blocks.items()}


def noisy_findings(f: dict) -> str:
    """Part 2's table in words: each method's gain over SGD, in test error points, as measured."""
    sgd = sum(v["test_err"] for v in f["noisy_sgd"]) / len(f["noisy_sgd"])

    def gain(key: str) -> str:
        points = sgd - f[key]["test_err"]
        return f"{abs(points):.1f} points {'below' if points >= 0 else 'above'}"

    return (f"Against SGD's mean test error of {sgd:.2f}%: the line's midpoint is {gain('noisy_line_midpoint')} "
            f"it and the ensemble of its endpoints {gain('noisy_line_endpoints')}, from one run of the same "
            f"length, where one network under the line's schedule is {gain('noisy_one')}; Ind (two runs) is "
            f"{gain('noisy_ind')}, ESPRO {gain('noisy_espro')} (one simplex alone, SPRO: "
            f"{f['spro_test_err']:.2f}%), SWA {gain('noisy_swa')} and FGE {gain('noisy_fge')}.")


def draw(record: dict, folder: str) -> None:
    """docs/demo_curve.png, docs/fge_ensemble.png, docs/noisy_labels.png and docs/plane.png from the record."""
    import landscape

    drawn = demo_report.draw(record, folder)
    os.replace(drawn["curve"], os.path.join(folder, "demo_curve.png"))
    plane = {k: np.asarray(v) for k, v in record["plane"].items() if k not in ("points", "dx", "dy")}
    landscape.plot_plane({**plane, "is_curve": True}, os.path.join(folder, "plane.png"), "ConvFC on DIGITS: Bezier curve")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="The README's figures, captions and pictures from docs/demo.json.")
    parser.add_argument("--from", dest="source", metavar="RUN_DIR",
                        help="record this demo run's figures.json as docs/demo.json first")
    args = parser.parse_args(argv)
    if args.source:
        source = os.path.join(args.source, "figures.json")
        if not os.path.isfile(source):
            print(f"error: {source} is missing: run scripts/demo.sh (make demo) first", file=sys.stderr)
            sys.exit(2)
        shutil.copyfile(source, RECORD)
    with open(RECORD) as f:
        record = json.load(f)
    with open(README) as f:
        text = f.read()
    text = update(text, render(record))  # before the README is opened for writing: a failure leaves it whole
    with open(README, "w") as f:
        f.write(text)
    draw(record, os.path.join(ROOT, "docs"))
    print(f"README.md and docs/*.png regenerated from {os.path.relpath(RECORD, ROOT)}")


if __name__ == "__main__":
    main()
