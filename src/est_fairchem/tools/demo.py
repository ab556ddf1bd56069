"""The README's demo: data -> train -> predict the four test splits -> submission file.

Three tasks: ``s2ef`` (EST-EquiformerV2, energies and forces of rattled frames), ``is2re``
(EST-Equiformer, relaxed energy from the initial structure) and ``qm9`` (the pure EST on made
QM9-format molecules: data -> train -> test MAE from fairchem's evaluator -> test predictions).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from est_fairchem.data.demo_s2ef import TEST_SPLITS
from est_fairchem.data.preflight import check_lmdb_dataset
from est_fairchem.errors import InputError
from est_fairchem.tools import fairchem_runs
from est_fairchem.tools.train_log import best_validation


@dataclass(frozen=True)
class DemoTask:
    """What differs between the demos. ``splits`` are the LMDB folders the demo reads, under
    ``<data>/<lmdb_dir>``; ``data_tasks`` the ``metadata.json`` tasks whose data it reuses."""

    name: str
    title: str
    config: str
    data: str
    primary_metric: str
    make_data: Callable[[Path, int], dict]
    splits: tuple[str, ...] = ("train", "val", *TEST_SPLITS)
    lmdb_dir: str = ""
    data_tasks: tuple[str, ...] = ()

    def lmdb(self, data: Path) -> Path:
        """The folder holding this task's split folders."""
        return data / self.lmdb_dir if self.lmdb_dir else data


def _make_s2ef(out: Path, seed: int) -> dict:
    from est_fairchem.data.demo_s2ef import make_s2ef_demo

    return make_s2ef_demo(out, seed=seed)


def _make_is2re(out: Path, seed: int) -> dict:
    from est_fairchem.data.demo_relaxations import make_relaxation_demo

    return make_relaxation_demo(out, seed=seed, task="is2re")


QM9_DEMO_MOLECULES = 200
QM9_DEMO_TARGET = "u0_atomization"


def _make_qm9(out: Path, seed: int) -> dict:
    """``out/raw`` (release layout), ``out/lmdb/{train,val,test}`` and ``out/metadata.json``."""
    from est_fairchem.data.demo_qm9 import make_qm9_demo
    from est_fairchem.data.qm9_convert import prepare_qm9

    make_qm9_demo(out / "raw", molecules=QM9_DEMO_MOLECULES, seed=seed, progress=False)
    prepared = prepare_qm9(out / "raw", out / "lmdb",
                           exclude=out / "raw" / "uncharacterized.txt",
                           subtract_atomrefs=True, progress=False)
    metadata = {"task": "qm9", "seed": seed, "train_systems": QM9_DEMO_MOLECULES,
                "samples": prepared["samples"]}
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


DEMO_TASKS = {
    "s2ef": DemoTask("s2ef", "EST-EquiformerV2 S2EF demo", "configs/oc20/s2ef/demo/est_eqv2_demo.yml",
                     "data/demo/s2ef", "forces_mae", _make_s2ef, data_tasks=("s2ef",)),
    "is2re": DemoTask("is2re", "EST-Equiformer IS2RE demo",
                      "configs/oc20/is2re/demo/est_equiformer_demo.yml", "data/demo/is2re",
                      "energy_mae", _make_is2re, data_tasks=("is2re", "is2rs")),
    "qm9": DemoTask("qm9", "EST (Figure 3) QM9 demo", "configs/qm9/demo/est_demo.yml",
                    "data/demo/qm9", f"{QM9_DEMO_TARGET}_mae", _make_qm9,
                    splits=("train", "val", "test"), lmdb_dir="lmdb", data_tasks=("qm9",)),
}


def ensure_demo_data(out: Path, seed: int, task: DemoTask) -> str:
    """Make the demo data unless ``out`` already holds a set for ``task``, of any size.

    Returns ``"reused"`` (demo data of this task and seed, per ``out/metadata.json``),
    ``"found"`` (no ``metadata.json``, but the task's split folders exist: used as they are)
    or ``"made"``. Raises :class:`InputError` for demo data of another task or seed.
    """
    metadata_file = out / "metadata.json"
    if metadata_file.exists():
        metadata = json.loads(metadata_file.read_text())
        made_task, made_seed = metadata.get("task", "s2ef"), metadata.get("seed")
        if made_task not in task.data_tasks:
            raise InputError(f"{metadata_file}: {out} holds {made_task} demo data, not "
                             f"{task.name}; remove it or pass --data elsewhere")
        if made_seed != seed:
            raise InputError(f"{metadata_file}: {out} holds demo data of seed {made_seed}, not "
                             f"{seed}; pass --seed {made_seed}, or --data elsewhere")
        return "reused"
    if all((task.lmdb(out) / split).exists() for split in task.splits):
        return "found"
    task.make_data(out, seed)
    return "made"


def check_demo_data(data: Path, task: DemoTask) -> dict[str, int]:
    """Pre-flight check of every split the demo reads (see :func:`check_lmdb_dataset`);
    returns split -> records. Raises :class:`InputError` naming the first bad file."""
    return {split: check_lmdb_dataset(task.lmdb(data) / split) for split in task.splits}


def _prepare_data(data: Path, seed: int, task: DemoTask) -> dict[str, int]:
    """Step 1 of a demo: make or reuse the data, check it, say so; returns split -> records."""
    status = ensure_demo_data(data, seed, task)
    records = check_demo_data(data, task)
    print(f"[1/4] demo data {status}: {data} ({records['train']} training samples)", flush=True)
    return records


def _train(config: Path, run_dir: Path, train_id: str, data_paths: list[str]) -> Path:
    """Step 2 of a demo: train; return the best checkpoint (the last one if none is best)."""
    print(f"[2/4] training {config} (log: {run_dir / 'logs' / (train_id + '.log')})", flush=True)
    checkpoint_dir = fairchem_runs.train(config, run_dir, train_id, data_paths)
    checkpoint = checkpoint_dir / "best_checkpoint.pt"
    return checkpoint if checkpoint.exists() else checkpoint_dir / "checkpoint.pt"


def run_demo(config: Path, data: Path, run_dir: Path, seed: int = 0, task: str = "s2ef") -> dict:
    """Run the whole demo of ``task`` and return where everything went, with validation metrics."""
    demo = DEMO_TASKS[task]
    if task == "qm9":
        return run_qm9_demo(config, data, run_dir, seed)
    _prepare_data(data, seed, demo)
    train_id = fairchem_runs.new_timestamp_id(f"est-demo-{task}")
    data_paths = [f"--dataset.train.src={data / 'train'}", f"--dataset.val.src={data / 'val'}"]
    checkpoint = _train(config, run_dir, train_id, data_paths)
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


def cosine_steps_override(config: Path, train_records: int) -> list[str]:
    """``--optim.T_max`` = the run's steps (max_epochs x steps per epoch on one process) for a
    config with ``scheduler: CosineAnnealingLR`` (counted in steps, so fixed to one set size);
    no override for other schedulers."""
    from est_fairchem.tools.model_from_config import load_config

    optim = load_config(config)["optim"]
    if optim.get("scheduler") != "CosineAnnealingLR":
        return []
    steps_per_epoch = -(-train_records // optim.get("batch_size", 1))
    return [f"--optim.T_max={optim['max_epochs'] * steps_per_epoch}"]


def _logged_mae(log_file: Path, metric: str) -> list[float]:
    """Every value of ``metric`` in fairchem's evaluation lines (no step count) of a log."""
    pattern = re.compile(rf"\b{re.escape(metric)}: ([-+0-9.eE]+)")
    return [float(m.group(1)) for line in log_file.read_text().splitlines()
            if "step:" not in line for m in [pattern.search(line)] if m]


def run_qm9_demo(config: Path, data: Path, run_dir: Path, seed: int = 0) -> dict:
    """QM9 demo: made data -> train -> ``--mode validate`` on the test split (test MAE) ->
    ``--mode predict`` on it. MAEs in eV (U0 atomization energy)."""
    demo = DEMO_TASKS["qm9"]
    records = _prepare_data(data, seed, demo)
    lmdb = demo.lmdb(data)
    train_id = fairchem_runs.new_timestamp_id("est-demo-qm9")
    data_paths = [f"--dataset.train.src={lmdb / 'train'}", f"--dataset.val.src={lmdb / 'val'}"]
    checkpoint = _train(config, run_dir, train_id,
                        [*data_paths, *cosine_steps_override(config, records["train"])])
    print("[3/4] test MAE: fairchem --mode validate on the test split", flush=True)
    validate_log = run_dir / "logs" / f"{train_id}-validate-test.log"
    fairchem_runs.run_fairchem(
        ["--mode", "validate", "--config-yml", str(config), "--cpu", "--run-dir", str(run_dir),
         "--timestamp-id", f"{train_id}-validate-test", "--checkpoint", str(checkpoint),
         data_paths[0], f"--dataset.val.src={lmdb / 'test'}"],
        validate_log,
    )
    (test_mae,) = _logged_mae(validate_log, demo.primary_metric)
    print("[4/4] predicting the test split", flush=True)
    predictions = fairchem_runs.predict(config, checkpoint, lmdb / "test", run_dir,
                                        f"{train_id}-predict-test", data_paths, task="ocp")
    val = _logged_mae(run_dir / "logs" / f"{train_id}.log", demo.primary_metric)
    return {
        "task": "qm9",
        "data": str(data),
        "checkpoint": str(checkpoint),
        "train_log": str(run_dir / "logs" / f"{train_id}.log"),
        "validate_log": str(validate_log),
        "predictions": {"test": str(predictions)},
        "val": {demo.primary_metric: min(val), "epochs": len(val)},
        "test": {demo.primary_metric: test_mae},
    }


def print_summary(summary: dict) -> None:
    val = summary["val"]
    task = summary.get("task", "s2ef")
    if task == "qm9":
        metric = DEMO_TASKS["qm9"].primary_metric
        print(f"\n== {DEMO_TASKS[task].title} ==")
        print(f"data:        {summary['data']}")
        print(f"train log:   {summary['train_log']}")
        print(f"checkpoint:  {summary['checkpoint']}")
        print(f"predictions: test           {summary['predictions']['test']}")
        print(f"U0 atomization energy MAE (fairchem's evaluator): best validation "
              f"{val[metric] * 1000:.1f} meV; test {summary['test'][metric] * 1000:.1f} meV")
        return
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
