"""Golden regression: a seeded tiny training run of each EST backbone through the real
``fairchem`` command, compared with stored numbers (``tests/golden/values.json``).

Each run starts from a checkpoint fairchem wrote before (``tests/golden/checkpoints/``), so it
also shows that such a checkpoint still loads, and records every training step's loss and the
test split's predictions (see ``tests/golden/cases.py``). A change that alters what a model
computes in forward, backward or its training-time grid rotations moves these numbers; one that
only moves code does not. The tolerance (``values.json``: relative 1e-4, absolute 1e-5) is far
above the run-to-run difference on one machine (none: two runs are bitwise equal) and far
below what a changed function gives (measured: turning the orientation embedding off moves the
S2EF test forces by up to 4e-3 eV/A and the losses by 1e-4 relative). When a change is meant to alter the numbers, regenerate them
with ``python -m tests.golden.regenerate`` and say so in the commit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.golden.cases import CASES, VALUES, run_case

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(VALUES.read_text())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_training_from_the_stored_checkpoint_matches_the_golden_numbers(case, golden, tmp_path):
    expected = golden["cases"][case.name]
    tolerance = golden["tolerance"]
    result = run_case(case, tmp_path, checkpoint=case.checkpoint)
    assert len(result["losses"]) == len(expected["losses"]), "another number of training steps"
    np.testing.assert_allclose(result["losses"], expected["losses"], **tolerance,
                               err_msg=f"{case.name}: training losses per step")
    for key in case.prediction_keys:
        np.testing.assert_allclose(np.asarray(result["predictions"][key], dtype=float),
                                   np.asarray(expected["predictions"][key], dtype=float),
                                   **tolerance, err_msg=f"{case.name}: test predictions of {key}")
