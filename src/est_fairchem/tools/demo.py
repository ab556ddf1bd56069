"""The README's demo: data -> train -> predict the four test splits -> submission file."""

from __future__ import annotations

import json
from pathlib import Path

from est_fairchem.data.demo_s2ef import TEST_SPLITS, DemoSizes, make_s2ef_demo
from est_fairchem.tools import fairchem_runs
from est_fairchem.tools.train_log import best_validation

def ensure_demo_data(out: Path, seed: int, sizes: DemoSizes) -> str:
    """Make the demo data unless ``out`` already holds a set with this seed and size."""
    metadata_file = out / "metadata.json"
    if metadata_file.exists():
        metadata = json.loads(metadata_file.read_text())
        same = (metadata.get("seed"), metadata.get("train_systems")) == (seed, sizes.train_systems)
        if same:
            return "reused"
        raise FileExistsError(
            f"{out} holds demo data of another seed/size ({metadata_file}); "
            "remove it or pass --data elsewhere"
        )
    make_s2ef_demo(out, seed=seed, sizes=sizes)
    return "made"


def run_demo(config: Path, data: Path, run_dir: Path, seed: int = 0) -> dict:
    """Run the whole S2EF demo and return where everything went, with validation metrics."""
    status = ensure_demo_data(data, seed, DemoSizes())
    print(f"[1/4] demo data {status}: {data}", flush=True)
    train_id = fairchem_runs.new_timestamp_id("est-demo")
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
            config, checkpoint, data / split, run_dir, f"{train_id}-predict-{split}", data_paths
        )
    metrics = best_validation(run_dir / "logs" / f"{train_id}.log")
    submission = fairchem_runs.make_submission(
        {split.removeprefix("test_"): predictions[split] for split in TEST_SPLITS},
        run_dir / f"{train_id}_s2ef_submission.npz",
    )
    print("[4/4] submission file written", flush=True)
    return {
        "data": str(data),
        "checkpoint": str(checkpoint),
        "train_log": str(run_dir / "logs" / f"{train_id}.log"),
        "predictions": {split: str(path) for split, path in predictions.items()},
        "submission": str(submission),
        "val": metrics,
    }


def print_summary(summary: dict) -> None:
    val = summary["val"]
    print("\n== EST-EquiformerV2 demo ==")
    print(f"data:        {summary['data']}")
    print(f"train log:   {summary['train_log']}")
    print(f"checkpoint:  {summary['checkpoint']}")
    for split, path in summary["predictions"].items():
        print(f"predictions: {split:<14} {path}")
    print(f"submission:  {summary['submission']}")
    print(
        f"validation (fairchem's evaluator, best epoch {val['epoch']:.0f}): "
        f"energy MAE {val['energy_mae'] * 1000:.1f} meV, "
        f"force MAE {val['forces_mae'] * 1000:.1f} meV/Å, "
        f"force cosine {val['forces_cosine_similarity']:.3f}"
    )
