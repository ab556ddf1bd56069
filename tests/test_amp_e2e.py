"""Mixed precision end to end: a test-only trainer (``CpuAutocastTrainer``: fairchem's S2EF
trainer with the training forward under CPU bfloat16 autocast, emulating ``--amp``) trains the
tiny EST model through the real ``fairchem`` command (see ``tests/test_amp.py``)."""

from __future__ import annotations

import math
import os
import re

import pytest
import torch

from est_fairchem.trainers import PreemptibleForcesTrainer
from tests.test_amp import AMP_STEPS, CONFIG, REPO, _autocast


class CpuAutocastTrainer(PreemptibleForcesTrainer):
    """Test-only fairchem trainer: fairchem's S2EF trainer with the training forward under CPU
    bfloat16 autocast and its outputs cast to float32 for the loss (fairchem's ``--amp`` on
    CUDA computes the loss from the autocast outputs inside the autocast region)."""

    def _forward(self, batch):
        if not self.model.training:
            return super()._forward(batch)
        with _autocast():
            out = super()._forward(batch)
        return {key: value.float() for key, value in out.items()}


@pytest.mark.e2e
def test_fairchem_trains_under_cpu_autocast(tmp_path):
    """The real ``fairchem`` command, the tiny EST model on made data, 200 training steps with
    every forward under bfloat16 autocast: no NaN/inf, and the loss falls (measured once by
    hand: mean loss 72 over the first 20 steps, 11 over the last 20; 8 min on the loaded 2-core
    CPU, where bfloat16 is slower than float32)."""
    from est_fairchem.data.demo_s2ef import DemoSizes, make_s2ef_demo
    from est_fairchem.testing.checkpoint_state import load_training_state, model_weights
    from est_fairchem.tools.fairchem_runs import run_fairchem

    data = tmp_path / "data"
    make_s2ef_demo(data, seed=3, sizes=DemoSizes(train_systems=8, frames_per_system=4),
                   progress=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        run_fairchem(
            ["--mode", "train", "--config-yml", str(CONFIG), "--cpu", "--run-dir", str(tmp_path),
             "--timestamp-id", "amp", "--print-every", "1",
             "--trainer=tests.test_amp_e2e.CpuAutocastTrainer",
             f"--optim.max_epochs={AMP_STEPS // 8}", f"--optim.eval_every={AMP_STEPS}",
             f"--dataset.train.src={data / 'train'}", f"--dataset.val.src={data / 'val'}"],
            tmp_path / "amp.log",
        )
    log = (tmp_path / "amp.log").read_text()
    losses = [float(v) for v in re.findall(r"\bloss: ([^,\s]+), lr:", log)]
    assert len(losses) == AMP_STEPS
    assert all(math.isfinite(v) for v in losses), losses
    assert sum(losses[-8:]) < 0.8 * sum(losses[:8]), losses
    state = load_training_state(tmp_path / "checkpoints" / "amp" / "checkpoint.pt")
    assert state.step == AMP_STEPS
    assert all(torch.isfinite(t).all() for t in model_weights(state.raw).values())
    assert os.path.getsize(tmp_path / "checkpoints" / "amp" / "best_checkpoint.pt") > 0
