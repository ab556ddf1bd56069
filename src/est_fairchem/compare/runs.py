"""One run of a comparison through the real ``fairchem`` command, and the JSON it leaves.

A run trains (``--mode train``, validation split), tests its best checkpoint with fairchem's
evaluator (``--mode validate`` on the test split) and predicts the test split
(``--mode predict``), then writes ``runs/<name>.json`` (config, parameters, cost, budget,
learning curve, best validation error, test error, per-structure absolute errors' summary)
and ``predictions/<name>.npz`` (ids, predictions, targets of every system-level output), so
a bootstrap over structures can be run later. The JSON is written last and atomically: a run
whose JSON exists is finished, and a rerun skips it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from est_fairchem.compare.study import Run, Study, run_config
from est_fairchem.errors import InputError
from est_fairchem.testing.result_files import write_json


def one_thread_environment() -> dict[str, str]:
    """This process's environment with one thread for torch / OpenMP / MKL."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def scalars(log_dir: Path, tag: str) -> list[tuple[float, int, float]]:
    """(wall time, step, value) of a tensorboard scalar fairchem logged under ``log_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = []
    for folder in sorted({p.parent for p in log_dir.rglob("events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            events += [(e.wall_time, e.step, e.value) for e in accumulator.Scalars(tag)]
    return sorted(events)


def primary_metric(config: dict[str, Any]) -> str:
    metric = config.get("evaluation_metrics", {}).get("primary_metric")
    if metric is None:
        raise InputError("the dataset config names no evaluation_metrics.primary_metric")
    return metric


_TARGETS_LOCK = threading.Lock()
_TARGETS: dict[str, dict[str, dict]] = {}  # test split config (JSON) -> targets


def _targets(config: dict[str, Any]) -> dict[str, dict]:
    """Test split structures: id -> {output: target} for every system-level output. Read once
    per process under a lock: runs finish in parallel threads, and an LMDB file can be open
    only once per process."""
    from fairchem.core.common.utils import setup_imports
    from fairchem.core.datasets.base_dataset import create_dataset

    train = {k: v for k, v in config["dataset"]["train"].items()
             if k != "train_split_settings"}
    split = {**train, **config["dataset"]["test"]}
    outputs = {name: spec.get("property", name) for name, spec in config["outputs"].items()
               if spec.get("level", "system") == "system"}
    key = json.dumps([split, outputs], sort_keys=True, default=str)
    with _TARGETS_LOCK:
        if key not in _TARGETS:
            setup_imports()
            dataset = create_dataset(split, "test")
            targets = {}
            for index in range(len(dataset)):
                item = dataset[index]
                targets[_structure_id(item)] = {
                    name: float(getattr(item, prop)) for name, prop in outputs.items()
                    if getattr(item, prop, None) is not None}
            _TARGETS[key] = targets
        return _TARGETS[key]


def _structure_id(item) -> str:
    """fairchem's prediction id of a structure: ``sid``, or ``sid_fid`` when it has a frame."""
    def plain(value):
        return value.reshape(-1)[0].item() if hasattr(value, "reshape") else value

    fid = getattr(item, "fid", None)
    return f"{plain(item.sid)}" if fid is None else f"{plain(item.sid)}_{plain(fid)}"


def test_predictions(config: dict[str, Any], predictions: Path) -> dict[str, np.ndarray]:
    """fairchem's predictions of the test split with their targets: ``ids`` and, per
    system-level output, ``<output>`` (prediction) and ``<output>_target``."""
    saved = np.load(predictions)
    ids = [str(i) for i in saved["ids"]]
    targets = _targets(config)
    out: dict[str, np.ndarray] = {"ids": np.array(ids)}
    for name in config["outputs"]:
        if name not in saved.files or not all(name in targets.get(i, {}) for i in ids):
            continue
        out[name] = np.asarray(saved[name], dtype=np.float64).reshape(len(ids))
        out[f"{name}_target"] = np.array([targets[i][name] for i in ids])
    return out


def _yaml(path: Path, config: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def execute(study: Study, run: Run, data: dict[str, Any], model: dict[str, Any],
            cost: dict[str, Any] | None, graph: dict[str, float], results: Path,
            work: Path) -> dict[str, Any]:
    """Train, test and predict ``run``; write and return its JSON."""
    from est_fairchem.tools.fairchem_runs import run_fairchem

    run_dir = work / run.name
    shutil.rmtree(run_dir, ignore_errors=True)  # a run cut short restarts from scratch
    run_dir.mkdir(parents=True)
    train_config = run_config(study, run, data, model)
    predict_config = run_config(study, run, data, model, split="predict")
    train_yml = _yaml(run_dir / "train.yml", train_config)
    test_yml = _yaml(run_dir / "test.yml", run_config(study, run, data, model, split="validate"))
    predict_yml = _yaml(run_dir / "predict.yml", predict_config)
    env = one_thread_environment()
    common = ["--cpu", "--seed", str(run.seed)]
    start = time.time()
    run_fairchem(["--mode", "train", "--config-yml", str(train_yml), "--run-dir", str(run_dir),
                  "--identifier", run.name, "--print-every",
                  str(train_config["optim"]["eval_every"]), *common],
                 run_dir / "train.log", env)
    wall = time.time() - start
    checkpoint = sorted(run_dir.glob("checkpoints/*/best_checkpoint.pt"))[-1]
    metric = primary_metric(train_config)
    curve = [{"step": step, "val": value} for _, step, value in
             scalars(run_dir / "logs", f"val/{metric}")]
    run_fairchem(["--mode", "validate", "--config-yml", str(test_yml), "--checkpoint",
                  str(checkpoint), "--run-dir", str(run_dir / "test"), *common],
                 run_dir / "test.log", env)
    tested = scalars(run_dir / "test" / "logs", f"val/{metric}")
    run_fairchem(["--mode", "predict", "--config-yml", str(predict_yml), "--checkpoint",
                  str(checkpoint), "--run-dir", str(run_dir / "predict"), *common],
                 run_dir / "predict.log", env)
    predicted = test_predictions(predict_config,
                                 sorted(run_dir.glob("predict/results/*/*_predictions.npz"))[-1])
    prediction_file = results / "predictions" / f"{run.name}.npz"
    prediction_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(prediction_file, **predicted)
    own = (cost or {}).get("models", {}).get(run.model, {})
    seconds_per_step = own.get("seconds_per_step", math.nan)
    report = {
        "name": run.name, "protocol": run.protocol, "model": run.model, "seed": run.seed,
        "lr": run.lr, "steps": run.steps, "batch_size": study.batch_size,
        "train_size": study.train_size, "metric": metric,
        "parameters": own.get("parameters"), "flops_per_structure":
        own.get("flops_per_structure"), "seconds_per_step_isolated": seconds_per_step,
        "train_seconds_isolated": seconds_per_step * run.steps, "wall_seconds": wall,
        "graph_statistics": graph,
        "best_val": min(point["val"] for point in curve), "curve": curve,
        "test": tested[-1][2], "test_from_predictions": _mae(predicted),
        "predictions": str(prediction_file.relative_to(results)),
        "model_file": study.models[run.model], "config": train_config,
        "machine": platform.processor() or platform.machine(),
    }
    write_json(results / "runs" / f"{run.name}.json", report)
    return report


def _mae(predicted: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(np.mean(np.abs(predicted[name] - predicted[f"{name}_target"])))
            for name in predicted if f"{name}_target" in predicted}
