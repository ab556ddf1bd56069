"""The golden runs: one tiny seeded training run per EST backbone through the real
``fairchem`` command, started from a checkpoint stored in ``tests/golden/checkpoints/`` and
compared with the numbers in ``tests/golden/values.json`` (``tests/test_golden_e2e.py``).

Each run makes its small data (EMT or made QM9 records, seeded), trains one epoch from the
stored checkpoint's weights with SGD (fresh optimizer and schedule: the stored file is the
``best_checkpoint.pt`` fairchem writes, which holds no training state), records every step's
loss, validates at the end and predicts the test split (fairchem does so when validation
improves). Regenerate with ``python -m tests.golden.regenerate`` (see there).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

GOLDEN = Path(__file__).resolve().parent
REPO = GOLDEN.parents[1]
VALUES = GOLDEN / "values.json"
CHECKPOINTS = GOLDEN / "checkpoints"


def _s2ef_data(out: Path) -> None:
    from est_fairchem.data.demo_s2ef import DemoSizes, make_s2ef_demo

    make_s2ef_demo(out, seed=0, sizes=DemoSizes(train_systems=4, frames_per_system=2),
                   progress=False)


def _is2re_data(out: Path) -> None:
    from est_fairchem.data.demo_relaxations import RelaxationSizes, make_relaxation_demo

    make_relaxation_demo(out, seed=0, sizes=RelaxationSizes(train_systems=8), progress=False)


def _qm9_data(out: Path) -> None:
    from est_fairchem.data.demo_qm9 import make_qm9_demo
    from est_fairchem.data.qm9_convert import prepare_qm9

    raw = out.with_name(out.name + "_raw")
    make_qm9_demo(raw, molecules=48, seed=0, progress=False)
    prepare_qm9(raw, out, exclude=raw / "uncharacterized.txt", subtract_atomrefs=True,
                progress=False)


@dataclass(frozen=True)
class GoldenCase:
    """One backbone's golden run: its config, data, recording trainer and prediction keys."""

    name: str
    config: Path
    trainer: str
    make_data: Callable[[Path], None]
    prediction_keys: tuple[str, ...]

    @property
    def checkpoint(self) -> Path:
        return CHECKPOINTS / f"{self.name}.pt"


CASES = (
    GoldenCase("s2ef_est_eqv2", GOLDEN / "configs/s2ef_est_eqv2.yml",
               "tests.golden.recording.RecordingForcesTrainer", _s2ef_data,
               ("energy", "forces")),
    GoldenCase("is2re_est_equiformer", GOLDEN / "configs/is2re_est_equiformer.yml",
               "tests.golden.recording.RecordingEnergyTrainer", _is2re_data, ("energy",)),
    GoldenCase("qm9_pure_est", GOLDEN / "configs/qm9_pure_est.yml",
               "tests.golden.recording.RecordingOCPTrainer", _qm9_data, ("u0_atomization",)),
)


def run_case(case: GoldenCase, root: Path, checkpoint: Path | None) -> dict:
    """Make the data in ``root`` and train ``case`` there (from ``checkpoint``, or from fresh
    weights when None); return ``{"losses": [...], "predictions": {key: nested list},
    "best_checkpoint": path}``."""
    from est_fairchem.tools.fairchem_runs import run_fairchem

    data, runs = root / "data", root / "runs"
    case.make_data(data)
    record = root / "losses.jsonl"
    env_before = {k: os.environ.get(k) for k in ("PYTHONPATH", "OMP_NUM_THREADS", "EST_GOLDEN_RECORD")}
    os.environ.update({"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env_before["PYTHONPATH"]])),
                       "OMP_NUM_THREADS": "1",
                       "EST_GOLDEN_RECORD": str(record)})
    try:
        args = ["--mode", "train", "--config-yml", str(case.config), "--cpu",
                "--run-dir", str(runs), "--timestamp-id", case.name, "--seed", "0",
                f"--trainer={case.trainer}", "--print-every=1",
                f"--dataset.train.src={data / 'train'}", f"--dataset.val.src={data / 'val'}"]
        if checkpoint is not None:
            args += ["--checkpoint", str(checkpoint), f"--dataset.test.src={data / _test_split(data)}"]
        run_fairchem(args, runs / "logs" / f"{case.name}.log")
    finally:
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    losses = [json.loads(line)["loss"] for line in record.read_text().splitlines()]
    result = {"losses": losses, "best_checkpoint": runs / "checkpoints" / case.name / "best_checkpoint.pt"}
    if checkpoint is not None:
        (npz,) = (runs / "results" / case.name).glob("*_predictions.npz")
        with np.load(npz) as predictions:
            result["predictions"] = {k: predictions[k].tolist() for k in case.prediction_keys}
    return result


def _test_split(data: Path) -> str:
    """The made data's test split: ``test`` (QM9) or OC20's ``test_id``."""
    return "test" if (data / "test").is_dir() else "test_id"


def store_checkpoint(best_checkpoint: Path, case: GoldenCase) -> None:
    """Copy a fresh run's ``best_checkpoint.pt`` to the case's stored checkpoint."""
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best_checkpoint, case.checkpoint)
