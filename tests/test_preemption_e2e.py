"""Preemption: a real ``fairchem`` training process, a real SIGTERM mid-epoch, and a resume.

fairchem 1.10 alone dies on SIGTERM (plain runs install no handler). With
``est_fairchem.trainers.PreemptibleForcesTrainer`` the run finishes its step, writes
``checkpoint.pt`` with the training state and exits with 143; ``--checkpoint`` resumes it, and
the resumed run ends exactly where an uninterrupted run of the same config ends: same step,
weights, AdamW moments, LR schedule and EMA (the tiny config is deterministic in training, and
the trainer restores each rank's RNG state, which EquiformerV2's random edge-frame roll uses).
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from est_fairchem.testing.checkpoint_state import load_training_state, max_abs_differences
from est_fairchem.tools.fairchem_runs import logged_steps, run_fairchem, run_fairchem_until_step
from tests.model_utils import REPO

CONFIG = REPO / "configs/oc20/s2ef/demo/est_eqv2_tiny_deterministic.yml"
STEPS_PER_EPOCH = 8  # 32 training samples, batch 4
EPOCHS = 2
SIGNAL_AFTER_STEP = 3
pytestmark = pytest.mark.e2e


def _args(run_dir: Path, timestamp_id: str, data: Path, *extra: str) -> list[str]:
    return ["--mode", "train", "--config-yml", str(CONFIG), "--cpu", "--run-dir", str(run_dir),
            "--timestamp-id", timestamp_id, "--print-every", "1",
            f"--optim.max_epochs={EPOCHS}", f"--optim.eval_every={STEPS_PER_EPOCH}",
            f"--dataset.train.src={data / 'train'}", f"--dataset.val.src={data / 'val'}", *extra]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from est_fairchem.data.demo_s2ef import DemoSizes, make_s2ef_demo

    root = tmp_path_factory.mktemp("preemption")
    data = root / "data"
    make_s2ef_demo(data, seed=2, sizes=DemoSizes(train_systems=8, frames_per_system=4),
                   progress=False)
    ckpt = root / "checkpoints"
    with pytest.MonkeyPatch.context() as mp:
        # the same thread count in every run: float reductions then round the same way
        mp.setenv("OMP_NUM_THREADS", "1")
        stop_code = run_fairchem_until_step(_args(root, "stopped", data), root / "stopped.log",
                                            SIGNAL_AFTER_STEP, signal.SIGTERM)
        stop_state = load_training_state(ckpt / "stopped" / "checkpoint.pt")
        run_fairchem(_args(root, "stopped", data, "--checkpoint",
                           str(ckpt / "stopped" / "checkpoint.pt")), root / "resumed.log")
        run_fairchem(_args(root, "reference", data), root / "reference.log")
        plain_code = run_fairchem_until_step(
            _args(root, "plain", data, "--trainer=equiformerv2_forces"), root / "plain.log",
            SIGNAL_AFTER_STEP, signal.SIGTERM)
    return {
        "root": root, "stop_code": stop_code, "stop_state": stop_state,
        "stopped_log": (root / "stopped.log").read_text(),
        "resumed_log": (root / "resumed.log").read_text(),
        "reference_log": (root / "reference.log").read_text(),
        "resumed": load_training_state(ckpt / "stopped" / "checkpoint.pt"),
        "reference": load_training_state(ckpt / "reference" / "checkpoint.pt"),
        "plain_code": plain_code, "plain_dir": ckpt / "plain",
    }


def _lr_by_step(log: str) -> dict[int, float]:
    """{step: lr} from fairchem's per-step training log lines."""
    found = re.findall(r"\blr: ([0-9.eE+-]+), epoch: [0-9.eE+-]+, step: ([0-9.eE+-]+)", log)
    return {int(round(float(step))): float(lr) for lr, step in found}


def test_plain_fairchem_dies_on_sigterm_without_saving(runs):
    """What fairchem 1.10 does by itself: killed by the signal, nothing saved mid-epoch."""
    assert runs["plain_code"] == -signal.SIGTERM
    assert not (runs["plain_dir"] / "checkpoint.pt").exists()


def test_sigterm_stops_at_a_step_boundary_mid_epoch_with_a_checkpoint(runs):
    state = runs["stop_state"]
    assert runs["stop_code"] == 128 + signal.SIGTERM
    steps = logged_steps(runs["stopped_log"])
    # the checkpoint holds the last step that ran (and was logged), inside the first epoch
    assert state.step == steps[-1] >= SIGNAL_AFTER_STEP
    assert 0 < state.step < STEPS_PER_EPOCH, "the stop must land mid-epoch"
    assert f"SIGTERM: stopped after step {state.step}" in runs["stopped_log"]
    assert state.epoch == pytest.approx(state.step / STEPS_PER_EPOCH)
    # every counter agrees: AdamW and the LR schedule each took exactly `step` steps
    assert state.optimizer_steps == (state.step,)
    assert state.scheduler_steps == state.step
    assert state.has_ema
    assert (runs["root"] / "checkpoints" / "stopped" / "rng_state.pt").is_file()


def test_resume_continues_from_the_next_step_on_the_same_schedule(runs):
    stop = runs["stop_state"].step
    resumed = logged_steps(runs["resumed_log"])
    assert resumed == list(range(stop + 1, STEPS_PER_EPOCH * EPOCHS + 1))
    reference_lr = _lr_by_step(runs["reference_log"])
    for step, lr in _lr_by_step(runs["resumed_log"]).items():
        assert lr == pytest.approx(reference_lr[step], rel=1e-12), step


def test_resumed_run_ends_where_the_uninterrupted_run_ends(runs):
    """Measured: identical to the last bit (weights, AdamW moments, EMA)."""
    resumed, reference = runs["resumed"], runs["reference"]
    assert resumed.step == reference.step == STEPS_PER_EPOCH * EPOCHS
    assert resumed.optimizer_steps == reference.optimizer_steps
    assert resumed.scheduler_steps == reference.scheduler_steps
    assert resumed.learning_rates == reference.learning_rates
    diff = max_abs_differences(resumed.raw, reference.raw)
    assert diff == {"model": 0.0, "optimizer": 0.0, "ema": 0.0}, diff
