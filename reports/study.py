"""The Fashion-MNIST study's page (docs/fashion.md) and the README's headline figures, generated from
the study's record (docs/fashion.json) as the demo's are from docs/demo.json.

``record(out_dir)`` gathers scripts/fashion_tables.sh's and scripts/alignment_table.sh's runs (the
figures seed by seed), the machine and the time; ``blocks(record)`` renders the generated parts by
name; ``verdicts(record)`` says, effect by effect, whether the published claim reproduced and by how
many standard deviations.
"""
from __future__ import annotations

import datetime
import glob
import os

from tabulate import tabulate

import runtime.processes
from reports import alignment, fashion
from reports.summaries import MISSING

COMMANDS = ("bash scripts/fashion_tables.sh runs/study --gpus 0,0",
            "bash scripts/alignment_table.sh runs/study --models MLP3x512 --gpus 0,0",
            "python scripts/study_docs.py --from runs/study")
# |mean| / std of the per-seed effects at or above which an effect counts as separated from zero
SEPARATED = 2.0


def _span_minutes(folder: str) -> float | None:
    """Minutes from the first run's start (its command.sh) to the last run's end (its summary.json)."""
    starts = [os.path.getmtime(p) for p in glob.glob(os.path.join(folder, "*", "command.sh"))]
    ends = [os.path.getmtime(p) for p in glob.glob(os.path.join(folder, "*", "summary.json"))]
    return (max(ends) - min(starts)) / 60 if starts and ends else None


def record(out_dir: str, wall_minutes: float | None = None) -> dict:
    return {"fashion": fashion.record(out_dir), "alignment": alignment.record(out_dir), "commands": list(COMMANDS),
            "machine": {"cpu": runtime.processes.cpu_model(), "isa": runtime.processes.cpu_isa(), "cores": os.cpu_count(), "threads_per_run": 1,
                        "date": datetime.date.today().isoformat()},
            "wall_minutes": wall_minutes if wall_minutes is not None else _span_minutes(
                os.path.join(out_dir, fashion.FOLDER))}


def _effect_claims(found: dict):
    """(table, row, metric, effect, the paper's value or None, the paper's direction or None)."""
    signs = {"NLL lower": {"test_nll": -1}, "NLL, ECE lower": {"test_nll": -1, "test_ece": -1}, "wider": {"width": 1}}
    for table, rows in found["tables"].items():
        for row in rows:
            for metric, effect in row["effects"].items():
                published = effect.get("paper", {})
                direction = signs.get(effect.get("paper_sign"), {}).get(metric)
                if table == "subspaces" and metric == "test_err" and row["name"] in fashion.SUBSPACE_CLAIMS:
                    direction = -1
                if published or direction:
                    yield table, row["name"], row["against"], metric, effect, published, direction


def verdicts(found: dict) -> list[list[str]]:
    """Rows: the effect, ours (mean ± std over seeds), how many of our standard deviations it is from zero,
    the paper's (value by dataset, or its direction), and whether the claim reproduced: the same sign,
    at least SEPARATED standard deviations from zero."""
    rows = []
    for table, name, against, metric, effect, published, direction in _effect_claims(found):
        mean, std = effect["mean"], effect["std"]
        if direction is None:
            values = list(published.values())
            direction = 1 if all(v > 0 for v in values) else -1 if all(v < 0 for v in values) else 0
        paper = ", ".join(f"{d}: {v:+.2f}" for d, v in published.items()) or (
            f"{'wider' if metric == 'width' else 'lower' if direction < 0 else 'higher'} (in figures)")
        if mean is None or std is None:
            z, verdict = MISSING, MISSING if mean is None else "one seed: not judged"
        else:
            separated = std == 0 and mean != 0 or std > 0 and abs(mean) / std >= SEPARATED
            z = "∞" if std == 0 and mean != 0 else f"{abs(mean) / std:.1f}" if std > 0 else "0"
            if direction == 0:  # the paper's effect is nil
                verdict = "did not reproduce: a change" if separated else "reproduced: no change"
            elif mean * direction > 0:
                verdict = "reproduced" if separated else "same sign, within noise"
            else:
                verdict = "did not reproduce: opposite sign" if separated else "did not reproduce: within noise"
        digits = 3 if metric in ("test_nll", "train_loss") else 4 if metric == "test_ece" else 2
        ours = MISSING if mean is None else f"{mean:+.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")
        rows.append([f"{name} − {against}", metric.replace("_", " "), ours, z, paper, verdict])
    return rows


def _machine(found: dict) -> str:
    m, minutes = found["machine"], found["wall_minutes"]
    took = f"; the Fashion-MNIST tables' runs took {minutes:.0f} minutes of wall-clock time" if minutes else ""
    seeds, isa = len(found["fashion"]["seeds"]), ", ".join(m.get("isa", [])) or "unknown"
    return (f"Measured on an {m['cpu']} (ISA: {isa}; {m['cores']} cores, one thread a run, two runs at a time{took}), "
            f"on {m['date']}, {seeds} seed{'s' * (seeds != 1)}. Commands:\n\n```\n" + "\n".join(found["commands"])
            + "\n```")


def blocks(found: dict) -> dict[str, str]:
    """docs/fashion.md's and the README's generated parts, by name."""
    out = {}
    for (title, text), table in zip(fashion.sections(found["fashion"]), found["fashion"]["tables"]):
        out[f"fashion-{table}"] = f"**{title}**\n\n{text}"
    header = ["effect", "metric", "ours (mean ± std)", "mean / std (absolute)", "paper", "verdict"]
    out["fashion-verdicts"] = tabulate(verdicts(found["fashion"]), header, tablefmt="github", disable_numparse=True)
    out["fashion-alignment"] = "\n\n".join(f"**{title}**\n\n{text}"
                                           for title, text in alignment.sections(found["alignment"]))
    out["fashion-machine"] = _machine(found)
    out["fashion-headline"] = headline(found)
    return {name: text + "\n" for name, text in out.items()}


def headline(found: dict) -> str:
    """The README's few lines: the verdicts counted, and the largest effects."""
    rows = verdicts(found["fashion"])
    reproduced = [r for r in rows if r[-1].startswith("reproduced")]
    opposite = [r for r in rows if r[-1].startswith("did not reproduce")]
    n = len(found["fashion"]["seeds"])
    listed = "; ".join(f"{r[0]} ({r[1]}) {r[2]}" for r in reproduced) or "none"
    failed = "; ".join(f"{r[0]} ({r[1]}) {r[2]}" for r in opposite) or "none"
    return (f"On Fashion-MNIST ({n} seed{'s' * (n != 1)}, the zoo's MLP, mean ± std of the per-seed effects), "
            f"{len(reproduced)} of {len(rows)} published effects reproduced (the paper's sign, at least {SEPARATED:g} "
            f"standard deviations from zero; or no change where the paper saw none): {listed}. "
            f"Did not reproduce: {failed}. "
            f"The tables, the verdict of every effect and the alignment study: [docs/fashion.md](docs/fashion.md).")
