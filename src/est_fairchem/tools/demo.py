"""The README's demo: data -> train -> predict the four test splits -> submission file.

Two tasks: ``s2ef`` (EST-EquiformerV2, energies and forces of rattled frames) and ``is2re``
(EST-Equiformer, relaxed energy from the initial structure).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from est_fairchem.data.demo_s2ef import TEST_SPLITS
from est_fairchem.tools import fairchem_runs
from est_fairchem.tools.train_log import best_validation


@dataclass(frozen=True)
class DemoTask:
    """What differs between the S2EF and IS2RE demos."""

    name: str
    title: str
    config: str
    data: str
    primary_metric: str
    train_systems: int
    make_data: Callable[[Path, int], dict]


def _make_s2ef(out: Path, seed: int) -> dict:
    from est_fairchem.data.demo_s2ef import make_s2ef_demo

    return make_s2ef_demo(out, seed=seed)


def _make_is2re(out: Path, seed: int) -> dict:
    from est_fairchem.data.demo_relaxations import make_relaxation_demo

    return make_relaxation_demo(out, seed=seed, task="is2re")


DEMO_TASKS = {
    "s2ef": DemoTask("s2ef", "EST-EquiformerV2 S2EF demo", "configs/oc20/s2ef/demo/est_eqv2_demo.yml",
                     "data/demo/s2ef", "forces_mae", 48, _make_s2ef),
    "is2re": DemoTask("is2re", "EST-Equiformer IS2RE demo",
                      "configs/oc20/is2re/demo/est_equiformer_demo.yml", "data/demo/is2re",
                      "energy_mae", 64, _make_is2re),
}


def ensure_demo_data(out: Path, seed: int, task: DemoTask) -> str:
    """Make the demo data unless ``out`` already holds this task's default set of this seed."""
    metadata_file = out / "metadata.json"
    if metadata_file.exists():
        metadata = json.loads(metadata_file.read_text())
        made = (metadata.get("seed"), metadata.get("task", "s2ef"), metadata.get("train_systems"))
        if made == (seed, task.name, task.train_systems):
            return "reused"
        raise FileExistsError(
            f"{out} holds demo data of another task, seed or size ({metadata_file}); "
            "remove it or pass --data elsewhere"
        )
    task.make_data(out, seed)
    return "made"


def run_demo(config: Path, data: Path, run_dir: Path, seed: int = 0, task: str = "s2ef") -> dict:
    """Run the whole demo of ``task`` and return where everything went, with validation metrics."""
    demo = DEMO_TASKS[task]
    status = ensure_demo_data(data, seed, demo)
    print(f"[1/4] demo data {status}: {data}", flush=True)
    train_id = fairchem_runs.new_timestamp_id(f"est-demo-{task}")
    print(f"[2/4] training {config} (log: {run_dir / 'logs' / (train_id + '.log')})", flush=True)
    data_paths = [f"--dataset.train.src={data / 'train'}", f"--dataset.val.src={data / 'val'}"]
    checkpoint_dir = fairchem_runs.train(config, run_dir, train_id, data_paths)
    checkpoint = checkpoint_dir / "best_checkpoint.pt"
    if not checkpoint.exists():
        checkpoint = checkpoint_dir / "checkpoint.pt"
    print("[3/4] predicting the four test splits", flush=True)
    predictions = {}
    for split in TEST_SPLITS:
        predictions[split] = fairchem_runs.predict(
            config, checkpoint, data / split, run_dir, f"{train_id}-predict-{split}", data_paths,
            task=task,
        )
    metrics = best_validation(run_dir / "logs" / f"{train_id}.log", demo.primary_metric)
    submission = fairchem_runs.make_submission(
        {split.removeprefix("test_"): predictions[split] for split in TEST_SPLITS},
        run_dir / f"{train_id}_{task}_submission.npz",
    )
    print("[4/4] submission file written", flush=True)
    return {
        "task": task,
        "data": str(data),
        "checkpoint": str(checkpoint),
        "train_log": str(run_dir / "logs" / f"{train_id}.log"),
        "predictions": {split: str(path) for split, path in predictions.items()},
        "submission": str(submission),
        "val": metrics,
    }


def print_summary(summary: dict) -> None:
    val = summary["val"]
    task = summary.get("task", "s2ef")
    print(f"\n== {DEMO_TASKS[task].title} ==")
    print(f"data:        {summary['data']}")
    print(f"train log:   {summary['train_log']}")
    print(f"checkpoint:  {summary['checkpoint']}")
    for split, path in summary["predictions"].items():
        print(f"predictions: {split:<14} {path}")
    print(f"submission:  {summary['submission']}")
    if task == "is2re":
        print(
            f"validation (fairchem's evaluator, best epoch {val['epoch']:.0f}): "
            f"energy MAE {val['energy_mae'] * 1000:.1f} meV, "
            f"EwT {val['energy_within_threshold'] * 100:.1f} %"
        )
        return
    print(
        f"validation (fairchem's evaluator, best epoch {val['epoch']:.0f}): "
        f"energy MAE {val['energy_mae'] * 1000:.1f} meV, "
        f"force MAE {val['forces_mae'] * 1000:.1f} meV/Å, "
        f"force cosine {val['forces_cosine_similarity']:.3f}"
    )
