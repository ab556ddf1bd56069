"""The first accuracy study (benchmarks/accuracy.py, 3 seeds) read seed by seed: each EST model
against its baseline, paired by seed (same training molecules, same seed for initialisation and
batch order), with the 95 % interval of the mean difference, the paired t-test's p, Holm's
correction over all 16 comparisons, and the paired seeds a 4 % difference would need at the
observed spread (two-sided 5 % test, 80 % power).

    python benchmarks/accuracy_paired.py            # writes results/accuracy_small/paired.md
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from est_fairchem.compare.statistics import holm, paired_difference, seeds_needed
from est_fairchem.testing.result_files import write_text

RESULTS = Path(__file__).resolve().parent / "results" / "accuracy_small"
BASELINES = {"qm9": "equiformer", "oxides": "equiformer_v2"}
UNITS = {"qm9": "meV", "oxides": "meV/atom"}


def paired_rows(results: Path = RESULTS) -> list[dict]:
    """One row per (data, EST model, protocol) against the baseline's equal-steps runs."""
    runs = [json.loads(p.read_text()) for p in sorted(results.glob("*-seed*.json"))]
    rows = []
    for study, target in sorted({(r["study"], r["target"]) for r in runs}):
        base = {r["seed"]: r["test_mae"] for r in runs if (r["study"], r["target"], r["model"],
                r["protocol"]) == (study, target, BASELINES[study], "steps")}
        models = sorted({r["model"] for r in runs if (r["study"], r["target"]) ==
                         (study, target)} - {BASELINES[study]})
        for model in models:
            for protocol in ("steps", "time"):
                own = {r["seed"]: r["test_mae"] for r in runs if (r["study"], r["target"],
                       r["model"], r["protocol"]) == (study, target, model, protocol)}
                if not own:
                    continue
                d = paired_difference(own, base)
                diffs = np.array([own[s] - base[s] for s in d.seeds])
                effect = 0.04 * float(np.mean([base[s] for s in d.seeds]))
                rows.append({"data": f"{study} {target}", "unit": UNITS[study], "model": model,
                             "protocol": protocol, "difference": d,
                             "seeds_for_4_percent": seeds_needed(diffs, effect)})
    for row, p in zip(rows, holm([row["difference"].p for row in rows])):
        row["p_holm"] = p
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["`python benchmarks/accuracy_paired.py`", "",
             "| data | model | protocol | difference [95 % CI] | relative | p | Holm p | "
             "paired seeds for 4 % |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        d = row["difference"]
        lines.append(f"| {row['data']} | {row['model']} | {row['protocol']} | {d.mean:+.1f} "
                     f"[{d.low:+.1f}, {d.high:+.1f}] {row['unit']} | "
                     f"{100 * d.relative_mean:+.1f} % | {d.p:.3f} | {row['p_holm']:.2f} | "
                     f"{row['seeds_for_4_percent']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    table = markdown(paired_rows())
    write_text(RESULTS / "paired.md", table)
    print(table)
