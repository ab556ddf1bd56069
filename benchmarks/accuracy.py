"""Accuracy on real data: does an EST model learn better than its baseline at equal cost?

Trains each model with fairchem's own trainer (``fairchem --mode train``) on the same real
data and reports the test MAE in the paper's units, mean and standard deviation over seeds,
at equal optimizer steps and at equal wall-clock time:

- QM9 (``prepare-qm9 --raw qm9pack``: the release's 130,831 characterized molecules, seeded
  split), targets U0 (atomization energy) and HOMO: plain Equiformer (the baseline), EST with
  Equiformer's graph attention, the pure EST with the default and with the paper's settings.
- ``oxides.db`` (295 PBE bulk oxides, fairchem's ``ase_db`` format; the 24-atom polymorph of
  each oxide is the test set, see ``accuracy_configs.OXIDE_SPLITS``): plain EquiformerV2
  against EST-EquiformerV2 with the default and the paper's EST settings, energy per atom.

Protocols. ``steps``: every model trains the same number of epochs (so steps) of the same
data with the same schedule. ``time``: every EST model gets the baseline's training time,
i.e. round(epochs x t_baseline / t_model) epochs, from the step times measured in the
``steps`` runs (the baseline's own run is shared by both). Each run writes its JSON (config,
parameters, step time, learning curve of validation MAE against steps and seconds, test MAE
of its best checkpoint) as soon as it ends; a rerun skips finished runs, so an interrupted
study loses at most the run in progress. Then ``summary.json``, ``table.md`` and the curves
(PNG) are written from whatever runs exist.

    python benchmarks/accuracy.py                       # both studies, 3 seeds, small (CPU)
    python benchmarks/accuracy.py --study oxides --seeds 0 1 2 3 4
    python benchmarks/accuracy.py --study qm9 --targets u0 --seeds 1   # one part, in parallel
    python benchmarks/accuracy.py --size large          # GPU: paper-size QM9 models, all data
    python benchmarks/accuracy.py --report-only         # tables and curves from finished runs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from accuracy_baselines import oxides_floor, qm9_mean_floor, qm9_u0_floor
from accuracy_configs import (
    OXIDE_MODELS,
    OXIDES_DB,
    OXIDE_SPLITS,
    OXIDE_TARGETS,
    QM9_MODELS,
    QM9_TARGETS,
    REPO,
    SIZES,
    Model,
    Size,
    Target,
    oxide_config,
    qm9_config,
)
from common import est_fairchem_command, run_logged
from est_fairchem.compare.runs import scalars as _scalars
from est_fairchem.testing.result_files import write_json, write_text
from est_fairchem.tools.fairchem_runs import run_fairchem

STUDIES = {"qm9": (QM9_MODELS, QM9_TARGETS), "oxides": (OXIDE_MODELS, OXIDE_TARGETS)}


def prepared_qm9(work: Path) -> Path:
    """The real QM9 LMDBs (``prepare-qm9 --raw qm9pack --subtract-atomrefs``), made once."""
    qm9 = work / "qm9"
    if not (qm9 / "metadata.json").exists():
        run_logged([est_fairchem_command(), "prepare-qm9", "--raw", "qm9pack",
                    "--subtract-atomrefs", "--out", str(qm9)], work / "prepare_qm9.log")
    return qm9


def _config(study: str, model: Model, target: Target, size: Size, epochs: int, split: str,
            work: Path) -> dict:
    if study == "qm9":
        return qm9_config(model, target, size, prepared_qm9(work), epochs, split)
    return oxide_config(model, size, epochs, split)


def _epochs(study: str, size: Size) -> int:
    return size.qm9_epochs if study == "qm9" else size.oxide_epochs


def _fairchem(args: list[str], log: Path, cpu: bool) -> None:
    run_fairchem([*args, *(["--cpu"] if cpu else [])], log)


def learning_curve(log_dir: Path, metric: str) -> tuple[float, list[dict]]:
    """Median seconds per training step, and the validation MAE against steps and training
    seconds (the time between step logs, without the validations' own time)."""
    train = _scalars(log_dir, "train/loss")
    val = _scalars(log_dir, f"val/{metric}")
    gaps = np.diff([wall for wall, _, _ in train])
    step_time = float(np.median(gaps)) if len(gaps) else math.nan
    val_steps = {step for _, step, _ in val}
    elapsed, seconds_at = step_time, {train[0][1]: step_time} if train else {}
    for (_, step, _), gap in zip(train[1:], gaps):
        previous = step - 1
        elapsed += step_time if previous in val_steps else float(gap)  # skip the validation
        seconds_at[step] = elapsed
    curve = [{"step": step, "seconds": seconds_at.get(step, math.nan), "val_mae": value}
             for _, step, value in val]
    return step_time, curve


def _parameters(checkpoint: Path) -> int:
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    return int(sum(v.numel() for k, v in state.items()  # (EST options ride along as extra state)
                   if isinstance(v, torch.Tensor) and v.is_floating_point() and ".ema." not in k))


def run_one(study: str, target_name: str, model_name: str, protocol: str, seed: int, epochs: int,
            size: Size, work: Path, results: Path, cpu: bool) -> dict:
    """Train one model, test its best checkpoint, write and return its JSON."""
    models, targets = STUDIES[study]
    model, target = models[model_name], targets[target_name]
    name = f"{study}-{target_name}-{model_name}-{protocol}-seed{seed}"
    run_dir = work / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)  # a run cut short restarts from scratch
    run_dir.mkdir(parents=True)
    import yaml

    train_yml, test_yml = run_dir / "train.yml", run_dir / "test.yml"
    train_yml.write_text(yaml.safe_dump(_config(study, model, target, size, epochs, "val", work)))
    test_yml.write_text(yaml.safe_dump(_config(study, model, target, size, epochs, "test", work)))
    start = time.time()
    _fairchem(["--mode", "train", "--config-yml", str(train_yml), "--run-dir", str(run_dir),
               "--identifier", name, "--seed", str(seed), "--print-every", "1000"],
              run_dir / "train.log", cpu)
    wall = time.time() - start
    checkpoint = sorted(run_dir.glob("checkpoints/*/best_checkpoint.pt"))[-1]
    step_time, curve = learning_curve(run_dir / "logs", target.metric)
    _fairchem(["--mode", "validate", "--config-yml", str(test_yml), "--checkpoint",
               str(checkpoint), "--run-dir", str(run_dir / "test"), "--identifier", name + "-test"],
              run_dir / "test.log", cpu)
    tested = _scalars(run_dir / "test" / "logs", f"val/{target.metric}")
    steps = max(point["step"] for point in curve) if curve else 0
    report = {
        "study": study, "target": target_name, "model": model_name, "protocol": protocol,
        "seed": seed, "epochs": epochs, "steps": steps, "parameters": _parameters(checkpoint),
        "seconds_per_step": step_time, "train_seconds": step_time * steps, "wall_seconds": wall,
        "test_mae": tested[-1][2] * 1000.0, "unit": target.unit,
        "best_val_mae": min(point["val_mae"] for point in curve) * 1000.0,
        "curve": [{**point, "val_mae": point["val_mae"] * 1000.0} for point in curve],
        "config": yaml.safe_load(train_yml.read_text()),
        "machine": platform.processor() or platform.machine(),
    }
    write_json(results / f"{name}.json", report)
    return report


def _finished(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*-seed*.json"))}


def plan(study: str, seeds: list[int], size: Size, finished: dict[str, dict],
         targets: list[str] | None = None) -> list[tuple]:
    """The runs still to do, in order: the ``steps`` runs (baseline first, seed by seed), then
    the ``time`` runs, whose epochs need the ``steps`` runs' step times; ``targets`` limits
    them to some of the study's targets (default all)."""
    models, study_targets = STUDIES[study]
    targets = [t for t in study_targets if targets is None or t in targets]
    baseline = next(name for name, model in models.items() if model.baseline)
    order = [baseline] + [name for name in models if name != baseline]
    epochs = _epochs(study, size)
    todo = []
    for target in targets:
        for seed in seeds:
            for model in order:
                todo.append((study, target, model, "steps", seed, epochs))
        for seed in seeds:
            for model in order[1:]:
                todo.append((study, target, model, "time", seed, None))
    return [run for run in todo if f"{run[0]}-{run[1]}-{run[2]}-{run[3]}-seed{run[4]}"
            not in finished]


def equal_time_epochs(study: str, target: str, model: str, size: Size,
                      finished: dict[str, dict]) -> int | None:
    """round(epochs x t_baseline / t_model) from the finished ``steps`` runs (mean step time
    over seeds); None until both have a finished run."""
    models, _ = STUDIES[study]
    baseline = next(name for name, m in models.items() if m.baseline)

    def step_time(name: str) -> float | None:
        times = [r["seconds_per_step"] for r in finished.values() if r["study"] == study and
                 r["target"] == target and r["model"] == name and r["protocol"] == "steps"]
        return float(np.mean(times)) if times else None

    base, own = step_time(baseline), step_time(model)
    if base is None or own is None:
        return None
    return max(1, round(_epochs(study, size) * base / own))


def _mean_std(runs: list[dict], key: str) -> dict[str, float | None]:
    """``key_mean`` and ``key_std`` (sample std; None for one run) of ``key`` over runs."""
    values = [run[key] for run in runs]
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {f"{key}_mean": float(np.mean(values)), f"{key}_std": std}


def _with_spread(row: dict, key: str) -> str:
    """'mean ± std' of ``key`` in a summary row, '± std' left out for one seed."""
    std = row[f"{key}_std"]
    return f"{row[f'{key}_mean']:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def _span(runs: list[dict], key: str) -> int | str:
    """``key``'s value if every run has the same (the steps protocol), else ``"min-max"`` (the
    time protocol's epochs follow each seed's measured step times)."""
    values = sorted({run[key] for run in runs})
    return values[0] if len(values) == 1 else f"{values[0]}-{values[-1]}"


def summary(finished: dict[str, dict]) -> dict:
    """Mean, std and count of the test MAE per (study, target, protocol, model); the
    baseline's ``steps`` runs stand in its ``time`` row."""
    groups: dict[tuple, list[dict]] = {}
    for run in finished.values():
        groups.setdefault((run["study"], run["target"], run["protocol"], run["model"]), []).append(run)
    for study, (models, _) in STUDIES.items():
        baseline = next(name for name, m in models.items() if m.baseline)
        for (s, target, protocol, model), runs in list(groups.items()):
            if s == study and model == baseline and protocol == "steps":
                groups[(study, target, "time", model)] = runs
    out: dict = {}
    for (study, target, protocol, model), runs in sorted(groups.items()):
        out.setdefault(f"{study}/{target}/{protocol}", {})[model] = {
            **_mean_std(runs, "test_mae"), **_mean_std(runs, "best_val_mae"),
            "seeds": len(runs), "unit": runs[0]["unit"],
            "epochs": _span(runs, "epochs"), "steps": _span(runs, "steps"),
            "parameters": runs[0]["parameters"],
            "seconds_per_step": float(np.mean([r["seconds_per_step"] for r in runs])),
            "train_seconds": float(np.mean([r["train_seconds"] for r in runs])),
        }
    return out


def markdown(table: dict) -> str:
    lines = []
    for key, models in table.items():
        lines += [f"\n**{key}**\n", "| model | test MAE | best val MAE | seeds | "
                  "epochs (steps) | parameters | s / step | train s |",
                  "|---|---|---|---|---|---|---|---|"]
        for model, row in models.items():
            lines.append(f"| {model} | {_with_spread(row, 'test_mae')} {row['unit']} | "
                         f"{_with_spread(row, 'best_val_mae')} | "
                         f"{row['seeds']} | {row['epochs']} ({row['steps']}) | "
                         f"{row['parameters']:,} | {row['seconds_per_step']:.3f} | "
                         f"{row['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def plot_curves(finished: dict[str, dict], results: Path) -> list[Path]:
    """One PNG per (study, target): validation MAE against steps and against seconds, the
    mean over seeds of each model's ``steps`` runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    keys = sorted({(r["study"], r["target"]) for r in finished.values()})
    for study, target in keys:
        runs = [r for r in finished.values() if r["study"] == study and r["target"] == target
                and r["protocol"] == "steps"]
        figure, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4))
        for model in sorted({r["model"] for r in runs}):
            curves = [r["curve"] for r in runs if r["model"] == model]
            length = min(len(c) for c in curves)
            steps = [curves[0][i]["step"] for i in range(length)]
            seconds = np.mean([[c[i]["seconds"] for i in range(length)] for c in curves], axis=0)
            maes = np.mean([[c[i]["val_mae"] for i in range(length)] for c in curves], axis=0)
            by_step.plot(steps, maes, marker="o", label=model)
            by_time.plot(seconds, maes, marker="o", label=model)
        unit = runs[0]["unit"]
        for axis, label in ((by_step, "optimizer steps"), (by_time, "training seconds")):
            axis.set_xlabel(label)
            axis.set_ylabel(f"validation MAE ({unit})")
            axis.set_yscale("log")
            axis.grid(alpha=0.3)
        by_step.legend()
        figure.suptitle(f"{study} {target}: mean over seeds")
        figure.tight_layout()
        path = results / f"curves_{study}_{target}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def floors(finished: dict[str, dict], size: Size, work: Path) -> dict[str, float]:
    """``study/target/split`` -> MAE of the per-element references alone (HOMO: of the
    training mean; accuracy_baselines), for the studies with finished runs whose data is at
    hand."""
    studies = {(run["study"], run["target"]) for run in finished.values()}
    out = {}
    if ("oxides", "energy") in studies and OXIDES_DB.exists():
        out["oxides/energy/test"] = oxides_floor()
        out["oxides/energy/val"] = oxides_floor("val")
    if ("qm9", "u0") in studies and (work / "qm9" / "metadata.json").exists():
        out["qm9/u0/test"] = qm9_u0_floor(work / "qm9", size)
    if ("qm9", "homo") in studies and (work / "qm9" / "metadata.json").exists():
        out["qm9/homo/test"] = qm9_mean_floor(work / "qm9", size, "homo")
    return out


def _floor_line(key: str, value: float) -> str:
    """One line of table.md naming a floor: what predicts it, on which split, its MAE."""
    what = ("the training mean alone (no model) gives" if key.startswith("qm9/homo/") else
            "per-element linear references alone (fitted on the training split, no model) give")
    task, split = key.rsplit("/", 1)
    return f"\n{task}: {what} {value:.2f} on the {split} split\n"


def write_report(results: Path, command: str, size_name: str,
                 work: Path | None = None) -> None:
    finished = _finished(results)
    table = summary(finished)
    floor = floors(finished, SIZES[size_name], work or REPO / "runs/accuracy")
    write_json(results / "summary.json", {"command": command, "size": size_name,
                                          "oxide_splits": OXIDE_SPLITS, "table": table,
                                          "element_references_alone": floor})
    notes = "".join(_floor_line(key, value) for key, value in floor.items())
    write_text(results / "table.md", f"`{command}`\n" + markdown(table) + notes)
    if finished:
        plot_curves(finished, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", nargs="+", choices=list(STUDIES), default=list(STUDIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--targets", nargs="+", default=None,
                        help="only these targets (qm9: u0 homo; oxides: energy); default all")
    parser.add_argument("--size", choices=list(SIZES), default="small")
    parser.add_argument("--work", type=Path, default=REPO / "runs/accuracy")
    parser.add_argument("--results", type=Path, default=None,
                        help="folder of the run JSONs, tables and curves "
                             "(default benchmarks/results/accuracy_<size>)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the tables and curves from the finished runs")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of the equal-steps runs (default: the size's)")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even with a GPU")
    args = parser.parse_args()
    known = {target for study in args.study for target in STUDIES[study][1]}
    if args.targets is not None and not set(args.targets) <= known:
        parser.error(f"--targets {' '.join(sorted(set(args.targets) - known))}: the studies "
                     f"{' '.join(args.study)} have the targets {' '.join(sorted(known))}")
    import torch

    cpu = args.cpu or not torch.cuda.is_available()
    size = SIZES[args.size]
    if args.epochs is not None:
        size = dataclasses.replace(size, qm9_epochs=args.epochs, oxide_epochs=args.epochs)
    results = args.results or REPO / f"benchmarks/results/accuracy_{args.size}"
    results.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/accuracy.py " + " ".join(sys.argv[1:])
    if not args.report_only:
        for study in args.study:
            for run in plan(study, args.seeds, size, _finished(results), args.targets):
                study_, target, model, protocol, seed, epochs = run
                if epochs is None:
                    epochs = equal_time_epochs(study_, target, model, size, _finished(results))
                    if epochs == _epochs(study_, size):  # as fast as the baseline: the same run
                        same = _finished(results).get(f"{study_}-{target}-{model}-steps-seed{seed}")
                        if same is not None:
                            write_json(results / f"{study_}-{target}-{model}-time-seed{seed}.json",
                                       {**same, "protocol": "time", "same_run_as": "steps"})
                            continue
                print(f"{study_} {target} {model} {protocol} seed {seed}: {epochs} epochs",
                      flush=True)
                report = run_one(study_, target, model, protocol, seed, epochs, size,
                                 args.work, results, cpu)
                print(f"  test MAE {report['test_mae']:.2f} {report['unit']}, "
                      f"{report['seconds_per_step']:.3f} s/step", flush=True)
                write_report(results, command, args.size, args.work)
    write_report(results, command, args.size, args.work)
    print((results / "table.md").read_text())


if __name__ == "__main__":
    main()
