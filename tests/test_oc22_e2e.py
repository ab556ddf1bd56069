"""OC22 through the real `fairchem` command: fairchem's oc22_lmdb format (total energies as
`y`, forces as `force`), key_mapping, element references fitted on the training split, the
EST-EquiformerV2 backbone; on made data in OC22's record layout."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from est_fairchem.data.demo_s2ef import DemoSizes, make_oc22_demo
from est_fairchem.tools import fairchem_runs
from tests.model_utils import REPO

DEMO = REPO / "configs/oc22/s2ef/demo/est_eqv2_oc22_demo.yml"
pytestmark = pytest.mark.e2e


def test_est_trains_on_oc22_records_with_fitted_element_references(tmp_path):
    data = tmp_path / "oc22"
    make_oc22_demo(data, seed=0, sizes=DemoSizes(train_systems=8, frames_per_system=2),
                   progress=False)
    run_dir = tmp_path / "runs"
    checkpoint = fairchem_runs.train(
        DEMO, run_dir, "oc22", [f"--dataset.train.src={data / 'train'}",
                                f"--dataset.val.src={data / 'val'}", "--print-every=2"])
    log = (run_dir / "logs" / "oc22.log").read_text()
    losses = [float(value) for value in re.findall(r"\bloss: ([0-9.eE+-]+)", log)]
    assert losses and np.isfinite(losses).all()
    state = torch.load(checkpoint / "checkpoint.pt", map_location="cpu", weights_only=False)
    references = state["elementrefs"]["energy"]["element_references"]
    used = references[[29, 47, 78, 28, 1, 7, 8]]  # Cu Ag Pt Ni, H N O: the training elements
    assert torch.count_nonzero(used) >= 5  # fitted on the total energies, saved with the run


def test_a_wrong_key_mapping_is_named_with_the_keys_the_records_hold(tmp_path):
    """`key_mapping: {energy: y}` (the wrong way round): fairchem skips the key in silence and
    stops at the element-reference fit with a bare KeyError: 'energy'; here the last line names
    the key and what the records hold."""
    data = tmp_path / "oc22"
    make_oc22_demo(data, seed=0, sizes=DemoSizes(train_systems=2, frames_per_system=1),
                   progress=False)
    import subprocess

    result = subprocess.run(
        [fairchem_runs.fairchem_executable(), "--mode", "train", "--config-yml", str(DEMO),
         "--cpu", "--run-dir", str(tmp_path / "runs"), f"--dataset.train.src={data / 'train'}",
         f"--dataset.val.src={data / 'val'}", "--dataset.train.key_mapping.energy=y"],
        capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "est_fairchem.errors.InputError: " in last, last
    assert (f"{data / 'train'}: key_mapping renames 'energy' to 'y', but the records hold no "
            "'energy'; they hold [") in last
    assert "'force'" in last and "'y'" in last
