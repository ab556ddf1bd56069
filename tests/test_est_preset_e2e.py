"""``est: {preset: paper}`` end to end: the one log line naming the options, in a real
``fairchem --mode train`` log (see ``tests/test_est_preset.py``)."""

from __future__ import annotations

import subprocess

import pytest

from tests.model_utils import REPO


@pytest.mark.e2e
def test_fairchem_train_logs_the_resolved_options_once(tmp_path):
    """A real ``fairchem --mode train`` (tiny config, one epoch on four made systems) with the
    preset set on the command line: its log names the options, the config's keys over the
    preset's (16 points, one expert of each kind, no grid rotation)."""
    from est_fairchem.tools.fairchem_runs import fairchem_executable
    from tests.model_utils import est_fairchem_cli

    data = tmp_path / "data"
    subprocess.run([*est_fairchem_cli(), "make-demo-data", "--task", "s2ef", "--out", str(data),
                    "--systems", "4", "--frames", "2"], check=True, capture_output=True, cwd=REPO)
    result = subprocess.run(
        [fairchem_executable(), "--mode", "train", "--cpu", "--config-yml",
         str(REPO / "configs/oc20/s2ef/demo/est_eqv2_tiny_deterministic.yml"),
         "--run-dir", str(tmp_path / "runs"), "--model.backbone.est.preset=paper",
         "--optim.max_epochs=1", f"--dataset.train.src={data / 'train'}",
         f"--dataset.val.src={data / 'val'}"],
        capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if "EST options (" in line]
    assert len(lines) == 1, result.stdout[-3000:]
    assert "(INFO): EST options (EquiformerV2ESTBackbone): preset paper -> num_points=16, " \
           "sampling=fibonacci, repulsion_steps=500, num_steerable_experts=1, " \
           "num_spherical_experts=1" in lines[0]
    assert "grid_frame=global" in lines[0] and "random_grid_rotation=false" in lines[0]
