"""Test-only trainers for the golden runs: fairchem's own trainers plus a record of every
training step's loss, appended as ``{"step", "loss"}`` JSON lines to ``$EST_GOLDEN_RECORD``.

Named in ``--trainer=tests.golden.recording.<Class>`` (the repository root on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os

from fairchem.core.models.equiformer_v2.trainers.energy_trainer import EquiformerV2EnergyTrainer
from fairchem.core.trainers import OCPTrainer

from est_fairchem.trainers import PreemptibleForcesTrainer

RECORD = "EST_GOLDEN_RECORD"


class LossRecorder:
    """Mixin: after each training loss, append it (full precision) to ``$EST_GOLDEN_RECORD``."""

    def _compute_loss(self, out, batch):
        loss = super()._compute_loss(out, batch)
        if self.model.training:
            with open(os.environ[RECORD], "a") as record:
                record.write(json.dumps({"step": int(self.step), "loss": loss.item()}) + "\n")
        return loss


class RecordingForcesTrainer(LossRecorder, PreemptibleForcesTrainer):
    """S2EF (the configs' ``PreemptibleForcesTrainer``)."""


class RecordingEnergyTrainer(LossRecorder, EquiformerV2EnergyTrainer):
    """IS2RE (fairchem's ``equiformerv2_energy``)."""


class RecordingOCPTrainer(LossRecorder, OCPTrainer):
    """QM9 (fairchem's ``ocp``)."""
