"""End to end through the real `fairchem` command: the README's demo, and bad input."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from est_fairchem.data.demo_s2ef import TEST_SPLITS
from est_fairchem.tools.fairchem_runs import fairchem_executable
from tests.model_utils import REPO, est_fairchem_cli, lmdb_samples

DEMO_CONFIG = REPO / "configs/oc20/s2ef/demo/est_eqv2_demo.yml"
pytestmark = pytest.mark.e2e


DEMO_ARGS = ["--config", DEMO_CONFIG]  # the conftest `demo` fixture runs this


def _logged_losses(log: str) -> list[float]:
    return [float(m) for m in re.findall(r"\bloss: ([0-9.eE+-]+)", log)]


def test_training_loss_falls_and_a_checkpoint_is_written(demo):
    summary, _ = demo
    assert Path(summary["checkpoint"]).is_file()
    losses = _logged_losses(Path(summary["train_log"]).read_text())
    assert len(losses) >= 6, "fairchem logged too few training steps"
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])


def test_predictions_cover_each_split_in_fairchem_format(demo):
    summary, _ = demo
    data = Path(summary["data"])
    for split in TEST_SPLITS:
        pred = np.load(summary["predictions"][split])
        samples = lmdb_samples(data / split)
        assert sorted(pred["ids"].tolist()) == sorted(f"{s.sid}_{s.fid}" for s in samples)
        free_atoms = sum(int((s.fixed == 0).sum()) for s in samples)
        assert pred["forces"].shape == (free_atoms, 3)
        assert pred["energy"].shape[0] == len(samples)
        assert pred["energy"].dtype == np.float32


def test_submission_file_holds_all_four_splits(demo):
    summary, stdout = demo
    submission = np.load(summary["submission"])
    for split in ("id", "ood_ads", "ood_cat", "ood_both"):
        assert {f"{split}_ids", f"{split}_energy", f"{split}_forces"} <= set(submission.files)
    assert summary["submission"] in stdout


def test_demo_learns_better_than_predicting_zero_force(demo):
    """The validation force MAE beats the trivial zero-force prediction on the same frames."""
    summary, stdout = demo
    zero = np.mean(np.concatenate([
        np.abs(s.forces.numpy()[s.fixed.numpy() == 0]).ravel()
        for s in lmdb_samples(Path(summary["data"]) / "val")
    ]))
    assert summary["val"]["forces_mae"] < 0.8 * zero
    assert "validation" in stdout and "force MAE" in stdout


def _train_fails(tmp_path, *overrides) -> str:
    result = subprocess.run(
        [fairchem_executable(), "--mode", "train", "--config-yml", str(DEMO_CONFIG), "--cpu",
         "--run-dir", str(tmp_path), *overrides],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_unknown_est_option_fails_naming_the_key(demo, tmp_path):
    data = Path(demo[0]["data"])
    output = _train_fails(tmp_path, "--model.backbone.est.num_expert=3",
                          f"--dataset.train.src={data / 'train'}",
                          f"--dataset.val.src={data / 'val'}")
    assert "unknown EST option(s) ['num_expert']" in output


def test_missing_dataset_path_fails_naming_the_path(tmp_path):
    missing = tmp_path / "no_such_dataset"
    output = _train_fails(tmp_path, f"--dataset.train.src={missing}")
    assert str(missing) in output


def test_trained_checkpoint_stays_equivariant(demo):
    """`est-fairchem check-equivariance` on the demo's checkpoint, as a user would run it.
    Measured after the demo's training: energy 1.4e-6, forces 1.1e-4 (max over 5 rotations)."""
    summary, _ = demo
    result = subprocess.run(
        [*est_fairchem_cli(), "check-equivariance", str(DEMO_CONFIG),
         "--checkpoint", summary["checkpoint"]], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    energy = float(re.search(r"energy relative error .*: max ([0-9.e+-]+)", result.stdout).group(1))
    force = float(re.search(r"force relative error .*: +max ([0-9.e+-]+)", result.stdout).group(1))
    assert energy < 2e-5 and force < 2e-3
