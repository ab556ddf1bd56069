"""QM9 end to end through the real commands, on made data: `est-fairchem make-demo-data --task
qm9` -> `est-fairchem prepare-qm9 --subtract-atomrefs` -> `fairchem --mode train` (the pure EST
demo config) -> `fairchem --mode validate` on the test split (the test MAE, fairchem's evaluator)
and `fairchem --mode predict` on it (per-molecule predictions)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from est_fairchem.tools import fairchem_runs
from tests.model_utils import REPO, est_fairchem_cli, lmdb_samples

CONFIG = REPO / "configs/qm9/demo/est_demo.yml"
MOLECULES = 120  # train 100, val 9, test the rest after 2 exclusions
EPOCHS, BATCH = 6, 8
TARGET = "u0_atomization"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Data -> train -> validate on test -> predict test, in a temporary folder."""
    root = tmp_path_factory.mktemp("qm9_e2e")
    raw, lmdb, runs = root / "raw", root / "lmdb", root / "runs"
    # One thread per process: on a small shared CPU torch's default of one thread per core
    # runs these small matrices up to 20x slower when other jobs compete for the cores.
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        for command in (
            [*est_fairchem_cli(), "make-demo-data", "--task", "qm9", "--out", str(raw),
             "--systems", str(MOLECULES)],
            [*est_fairchem_cli(), "prepare-qm9", "--raw", str(raw), "--out", str(lmdb), "--subtract-atomrefs",
             "--exclude", str(raw / "uncharacterized.txt")],
        ):
            result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        train_size = len(lmdb_samples(lmdb / "train"))
        steps_per_epoch = -(-train_size // BATCH)
        data = [f"--dataset.train.src={lmdb / 'train'}", f"--dataset.val.src={lmdb / 'val'}"]
        train_id = fairchem_runs.new_timestamp_id("qm9-e2e")
        checkpoint_dir = fairchem_runs.train(
            CONFIG, runs, train_id,
            [*data, f"--optim.max_epochs={EPOCHS}", f"--optim.batch_size={BATCH}",
             f"--optim.eval_every={steps_per_epoch}", f"--optim.T_max={EPOCHS * steps_per_epoch}",
             "--print-every=4"],
        )
        checkpoint = checkpoint_dir / "best_checkpoint.pt"
        validate_log = runs / "logs" / f"{train_id}-validate-test.log"
        fairchem_runs.run_fairchem(
            ["--mode", "validate", "--config-yml", str(CONFIG), "--cpu", "--run-dir", str(runs),
             "--timestamp-id", f"{train_id}-validate-test", "--checkpoint", str(checkpoint),
             f"--dataset.train.src={lmdb / 'train'}", f"--dataset.val.src={lmdb / 'test'}"],
            validate_log,
        )
        predictions = fairchem_runs.predict(CONFIG, checkpoint, lmdb / "test", runs,
                                            f"{train_id}-predict-test", data, task="ocp")
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous
    return {"lmdb": lmdb, "train_log": runs / "logs" / f"{train_id}.log",
            "validate_log": validate_log, "predictions": predictions}


def _test_mae(log_file: Path) -> float:
    """The target's MAE that ``--mode validate`` logged (fairchem's evaluator), in eV."""
    (value,) = re.findall(rf"\b{TARGET}_mae: ([0-9.eE+-]+), {TARGET}_mse", log_file.read_text())
    return float(value)


def _training_losses(log: str) -> list[float]:
    """The training-step losses fairchem logged (lines with a step count; not validation)."""
    return [float(m.group(1)) for m in re.finditer(r"\bloss: ([0-9.eE+-]+), lr: [^\n]*step:", log)]


def test_training_loss_falls(run):
    losses = _training_losses(run["train_log"].read_text())
    assert len(losses) >= 8, "fairchem logged too few training steps"
    assert np.mean(losses[-3:]) < 0.75 * np.mean(losses[:3])


def test_test_split_mae_beats_the_training_mean(run):
    """fairchem's evaluator on the test split (``--mode validate`` with ``dataset.val`` = test),
    in meV, below 70 % of the MAE of predicting the training mean (~800 meV on this data)."""
    mae_mev = _test_mae(run["validate_log"]) * 1000
    train_mean = np.mean([getattr(s, TARGET) for s in lmdb_samples(run["lmdb"] / "train")])
    test = np.array([getattr(s, TARGET) for s in lmdb_samples(run["lmdb"] / "test")])
    baseline_mev = np.mean(np.abs(test - train_mean)) * 1000
    print(f"test MAE {mae_mev:.0f} meV (training-mean baseline {baseline_mev:.0f} meV)")
    assert mae_mev < 0.7 * baseline_mev


def test_predictions_match_the_evaluators_test_mae(run):
    """``--mode predict`` writes one float32 value per test molecule (id = sid_fid); their MAE
    against the LMDB targets is the evaluator's test MAE."""
    pred = np.load(run["predictions"])
    samples = {f"{s.sid}_{s.fid}": getattr(s, TARGET) for s in lmdb_samples(run["lmdb"] / "test")}
    ids = [str(i) for i in pred["ids"].tolist()]
    assert sorted(ids) == sorted(samples)
    values = pred[TARGET].reshape(-1)
    assert values.dtype == np.float32 and values.shape == (len(samples),)
    mae = np.mean(np.abs(values - np.array([samples[i] for i in ids])))
    assert mae == pytest.approx(_test_mae(run["validate_log"]), rel=1e-3, abs=1e-4)
