"""The report of a comparison: ``summary.json``, ``table.md`` and two plots, from finished runs.

Every model is compared with the baseline (and with the partners ``pairs`` names) seed by
seed, on the seeds both ran: the mean difference of the test error with its 95 % interval, the
same relative to the reference, the paired t-test's p and Holm's correction over every
distinct comparison in the report. At equal time the baseline's runs are its equal-steps runs;
a model whose equal-time budget is within ``--same-time`` of the steps budget has no separate
time runs (its steps runs stand for both), so an equal-time row between two such models
repeats their equal-steps comparison and counts once in the correction.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from est_fairchem.compare.plan import chosen_learning_rates, finished
from est_fairchem.compare.statistics import bootstrap_relative_difference, holm, \
    paired_difference
from est_fairchem.compare.study import Study
from est_fairchem.testing.result_files import write_json, write_text

PROTOCOL_TITLES = {"steps": "equal steps", "time": "equal training time (isolated timing)",
                   "long": "convergence (longer runs)"}


def _errors(runs: dict[str, dict], protocol: str, model: str, scale: float) -> dict[int, float]:
    return {r["seed"]: r["test"] * scale for r in runs.values()
            if r["protocol"] == protocol and r["model"] == model}


def _protocol_errors(runs: dict[str, dict], protocol: str, model: str,
                     scale: float) -> tuple[dict[int, float], bool]:
    """A model's errors under ``protocol``; at equal time a model without time runs (its
    budget within 2 % of the steps budget, or the baseline itself) stands on its steps runs.
    Returns the errors and whether the steps runs stood in."""
    errors = _errors(runs, protocol, model, scale)
    if protocol == "time" and not errors:
        return _errors(runs, "steps", model, scale), True
    return errors, False


def _absolute_errors(runs: dict[str, dict], protocol: str, model: str,
                     results: Path) -> dict[int, np.ndarray]:
    """seed -> the absolute test errors per structure of ``model``'s ``protocol`` runs, from
    their saved predictions (empty when the metric is not an MAE of a saved output)."""
    out = {}
    for run in runs.values():
        if run["protocol"] != protocol or run["model"] != model or "predictions" not in run:
            continue
        output = run["metric"].removesuffix("_mae")
        path = results / run["predictions"]
        if not run["metric"].endswith("_mae") or not path.is_file():
            return {}
        saved = np.load(path)
        if output not in saved.files or f"{output}_target" not in saved.files:
            return {}
        out[run["seed"]] = np.abs(saved[output] - saved[f"{output}_target"])
    return out


def comparisons(study: Study, runs: dict[str, dict], scale: float,
                results: Path | None = None) -> list[dict[str, Any]]:
    """One row per (protocol, model, reference): the model's errors by seed and the paired
    difference from the reference (the baseline, or a ``pairs`` partner), Holm-corrected
    over all rows; the baseline's own row carries no difference. With ``results`` (where the
    runs' predictions are), each difference also gets a bootstrap over seeds and test
    structures."""
    rows = []
    protocols = ("steps", "time", "long") if study.equal_time else ("steps", "long")
    for protocol in protocols:
        for model in study.models:
            errors, stand_in = _protocol_errors(runs, protocol, model, scale)
            if not errors or (protocol == "time" and model == study.baseline):
                continue
            summary = {"protocol": protocol, "model": model, "errors": errors,
                       "mean": float(np.mean(list(errors.values()))),
                       "sd": float(np.std(list(errors.values()), ddof=1))
                       if len(errors) > 1 else math.nan,
                       "steps_runs_stand_in": stand_in}
            references = study.references(model)
            if not references:
                rows.append({**summary, "reference": None})
            for reference in references:
                theirs, their_stand_in = _protocol_errors(
                    runs, "steps" if protocol == "time" and reference == study.baseline
                    else protocol, reference, scale)
                if theirs:
                    # the runs both sides stand on: an equal-time row on two models' equal-steps
                    # runs is the equal-steps comparison again, not another test
                    tested = ("steps" if stand_in else protocol, model,
                              "steps" if their_stand_in or reference == study.baseline
                              else protocol, reference)
                    rows.append({**summary, "reference": reference, "_tested": tested,
                                 "difference": paired_difference(errors, theirs).__dict__})
    if results is not None:  # once per distinct comparison: repeated rows share it
        boots: dict[tuple, dict | None] = {}
        for row in rows:
            if "difference" in row:
                ours, model, theirs, reference = tested = row["_tested"]
                if tested not in boots:
                    boots[tested] = bootstrap_relative_difference(
                        _absolute_errors(runs, ours, model, results),
                        _absolute_errors(runs, theirs, reference, results))
                row["bootstrap"] = boots[tested]
    _holm_once_per_comparison(rows)
    return rows


def _holm_once_per_comparison(rows: list[dict[str, Any]]) -> None:
    """Set ``p_holm`` of every row with a difference: Holm's correction over the distinct
    comparisons (rows that repeat one on the same runs count once and share its p)."""
    distinct = {}
    for row in rows:
        if "difference" in row:
            distinct.setdefault(row["_tested"], row["difference"]["p"])
    adjusted = dict(zip(distinct, holm(list(distinct.values()))))
    for row in rows:
        if "difference" in row:
            row["difference"]["p_holm"] = adjusted[row.pop("_tested")]


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else \
        f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "–" if math.isnan(value) else (f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}")


def markdown(study: Study, runs: dict[str, dict], cost: dict | None, rows: list[dict],
             unit: str, scale: float, command: str) -> str:
    lrs = chosen_learning_rates(study, runs)
    lines = [f"`{command}`", "",
             f"Data: `{study.data}`; {study.train_size or 'all'} training structures drawn per "
             f"seed; batch {study.batch_size}; {study.steps} steps at equal steps; baseline "
             f"**{study.baseline}**. Test error: `{_metric(runs)}` x {scale:g} ({unit}).", ""]
    if cost:
        base = cost["models"][study.baseline]["seconds_per_step"]
        lines += ["**Cost** (one thread, isolated, models alternating; "
                  f"{cost['repeats']} repeats of {cost['steps_per_repeat']} steps)", "",
                  "| model | parameters | FLOPs / structure | s / step, median [IQR] | "
                  "x baseline | learning rate |", "|---|---|---|---|---|---|"]
        for name, entry in cost["models"].items():
            low, high = entry["iqr"]
            lines.append(f"| {name} | {entry['parameters']:,} | "
                         f"{entry['flops_per_structure'] / 1e6:.1f} M | "
                         f"{entry['seconds_per_step']:.4f} [{low:.4f}, {high:.4f}] | "
                         f"{entry['seconds_per_step'] / base:.2f} | {lrs.get(name) or '–'} |")
        lines.append("")
    if len(study.lrs) > 1:
        lines += ["**Learning-rate sweep** (best validation error, seed "
                  f"{study.sweep_seed}, {study.steps} steps)", "",
                  "| model | " + " | ".join(f"lr {lr:g}" for lr in study.lrs) + " |",
                  "|---|" + "---|" * len(study.lrs)]
        for name in study.models:
            cells = []
            for lr in study.lrs:
                run = next((r for r in runs.values() if r["protocol"] == "sweep" and
                            r["model"] == name and r["lr"] == lr), None)
                cells.append("–" if run is None else
                             (f"**{run['best_val'] * scale:.1f}**" if lrs[name] == lr else
                              f"{run['best_val'] * scale:.1f}"))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    for protocol in ("steps", "time", "long"):
        chosen = [row for row in rows if row["protocol"] == protocol]
        if not chosen:
            continue
        lines += [f"**{PROTOCOL_TITLES[protocol]}**: test error ({unit}), and the paired "
                  "difference from the reference (95 % intervals over seeds; the bootstrap "
                  "also draws the test structures)", "",
                  "| model | reference | steps | seeds | mean ± sd | difference [95 % CI] | "
                  "relative [95 % CI] | relative, bootstrap [95 %] | p | Holm p |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in chosen:
            steps = sorted({r["steps"] for r in runs.values() if r["model"] == row["model"] and
                            r["protocol"] == ("steps" if row["steps_runs_stand_in"] else protocol)})
            d = row.get("difference")
            seeds = len(d["seeds"]) if d else len(row["errors"])
            cells = [row["model"], row["reference"] or "(baseline)", "/".join(map(str, steps)),
                     str(seeds), f"{row['mean']:.1f} ± {_fmt(row['sd'])}"]
            if d is None:
                cells += ["", "", "", "", ""]
            else:
                boot = row.get("bootstrap")
                cells += [f"{d['mean']:+.1f} [{_fmt(d['low'])}, {_fmt(d['high'])}]",
                          f"{100 * d['relative_mean']:+.1f} % [{_fmt(100 * d['relative_low'])}, "
                          f"{_fmt(100 * d['relative_high'])}]",
                          "–" if not boot else f"{100 * boot['relative_mean']:+.1f} % "
                          f"[{_fmt(100 * boot['relative_low'])}, "
                          f"{_fmt(100 * boot['relative_high'])}]", _p(d["p"]), _p(d["p_holm"])]
            lines.append("| " + " | ".join(cells) + " |")
        if protocol == "time" and any(row["steps_runs_stand_in"] for row in chosen):
            lines += ["", "A model whose equal-time budget is within the `--same-time` margin "
                      "of the steps budget stands on its equal-steps runs; a row between two "
                      "such models repeats the equal-steps comparison, and Holm's correction "
                      "counts it once."]
        lines.append("")
    lines += _per_seed(study, runs, scale, unit)
    return "\n".join(lines) + "\n"


def _metric(runs: dict[str, dict]) -> str:
    return next(iter(runs.values()))["metric"] if runs else "?"


def _per_seed(study: Study, runs: dict[str, dict], scale: float, unit: str) -> list[str]:
    columns = [(p, m) for p in ("steps", "time", "long") for m in study.models
               if any(r["protocol"] == p and r["model"] == m for r in runs.values())]
    seeds = sorted({r["seed"] for r in runs.values() if r["protocol"] != "sweep"})
    if not columns:
        return []
    lines = [f"**Per seed** (test error, {unit})", "",
             "| seed | " + " | ".join(f"{m} ({p})" for p, m in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for seed in seeds:
        cells = []
        for protocol, model in columns:
            error = _errors(runs, protocol, model, scale).get(seed)
            cells.append("" if error is None else f"{error:.1f}")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return lines + [""]


def mean_curves(study: Study, runs: dict[str, dict], protocol: str,
                scale: float) -> dict[str, tuple[list[int], list[float], int]]:
    """Per model, the validation curve of its ``protocol`` runs averaged over seeds, up to the
    shortest one: (steps, mean validation error x ``scale``, number of seeds)."""
    means = {}
    for name in study.models:
        curves = [r["curve"] for r in runs.values() if r["model"] == name and
                  r["protocol"] == protocol]
        if curves:
            length = min(len(c) for c in curves)
            means[name] = ([curves[0][i]["step"] for i in range(length)],
                           [float(np.mean([c[i]["val"] * scale for c in curves]))
                            for i in range(length)], len(curves))
    return means


def plot(study: Study, runs: dict[str, dict], scale: float, unit: str, path: Path) -> None:
    """Test error against training seconds (isolated timing) and against parameters, a point
    per run; and the mean validation curves of the equal-steps and the convergence runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"steps": "o", "time": "s", "long": "^"}
    figure, (by_time, by_size, by_step) = plt.subplots(1, 3, figsize=(16, 4.5))
    colours = {name: f"C{i}" for i, name in enumerate(study.models)}
    for run in runs.values():
        if run["protocol"] == "sweep":
            continue
        style = dict(color=colours[run["model"]], marker=markers[run["protocol"]], alpha=0.75,
                     linestyle="none")
        by_time.plot(run["train_seconds_isolated"], run["test"] * scale, **style)
        if run.get("parameters"):
            by_size.plot(run["parameters"], run["test"] * scale, **style)
    for protocol, line in (("steps", "-"), ("long", "--")):
        for name, (steps, values, seeds) in mean_curves(study, runs, protocol, scale).items():
            by_step.plot(steps, values, color=colours[name], marker=".", linestyle=line,
                         label=f"{name} ({protocol}, {seeds} seed{'' if seeds == 1 else 's'})")
    for name, colour in colours.items():
        by_time.plot([], [], color=colour, marker="o", linestyle="none", label=name)
    for protocol, marker in markers.items():
        by_time.plot([], [], color="grey", marker=marker, linestyle="none", label=protocol)
    by_time.set_xlabel("training seconds (steps x isolated s/step, one thread)")
    by_size.set_xlabel("parameters")
    by_step.set_xlabel("optimizer steps (mean over seeds; dashed: convergence runs)")
    by_time.set_ylabel(f"test error ({unit})")
    by_step.set_ylabel(f"validation error ({unit})")
    for axis in (by_time, by_size, by_step):
        axis.grid(alpha=0.3)
    seconds = [r["train_seconds_isolated"] for r in runs.values() if r["protocol"] != "sweep"]
    if max(seconds) > 10 * min(seconds):
        by_time.set_xscale("log")
    by_time.legend(fontsize=7)
    by_step.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(study: Study, results: Path, command: str, unit: str = "",
                 scale: float = 1.0) -> None:
    runs = finished(results)
    cost_file = results / "cost.json"
    cost = json.loads(cost_file.read_text()) if cost_file.exists() else None
    rows = comparisons(study, runs, scale, results)
    write_json(results / "summary.json", {
        "command": command, "study": study.to_json(), "unit": unit, "scale": scale,
        "learning_rates": chosen_learning_rates(study, runs), "comparisons": rows,
        "cost": cost})
    write_text(results / "table.md", markdown(study, runs, cost, rows, unit, scale, command))
    if any(r["protocol"] != "sweep" for r in runs.values()):
        plot(study, runs, scale, unit, results / "error_vs_cost.png")
