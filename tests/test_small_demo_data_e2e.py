"""The demo config on small demo sets through the real ``fairchem`` command: a 20-frame and a
100-frame set train and write checkpoints with no per-batch edge-index warning, and
``est-fairchem demo`` runs on a small set (see ``tests/test_small_demo_data.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from est_fairchem.tools import fairchem_runs
from tests.test_small_demo_data import DEMO_CONFIG, EDGE_WARNING


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory) -> dict[int, Path]:
    """`make-demo-data --task s2ef --systems S --frames 4` for S = 5 (20 frames) and 25 (100)."""
    from est_fairchem.data.demo_s2ef import DemoSizes, make_s2ef_demo

    root = tmp_path_factory.mktemp("small_sets")
    sets = {}
    for systems in (5, 25):
        sets[systems * 4] = root / f"s{systems}"
        make_s2ef_demo(sets[systems * 4], sizes=DemoSizes(systems, 4), progress=False)
    return sets


@pytest.mark.e2e
@pytest.mark.parametrize("frames", [20, 100])
def test_demo_config_trains_and_checkpoints_on_a_small_set(small_sets, frames, tmp_path):
    """One epoch (5 or 25 steps: fewer than the old eval_every of 48) writes checkpoint.pt and
    best_checkpoint.pt; the log has no per-batch edge-index warning."""
    data = small_sets[frames]
    checkpoint_dir = fairchem_runs.train(
        DEMO_CONFIG, tmp_path, "small",
        [f"--dataset.train.src={data / 'train'}", f"--dataset.val.src={data / 'val'}",
         "--optim.max_epochs=1", "--print-every=1"])
    assert (checkpoint_dir / "best_checkpoint.pt").is_file()
    log = (tmp_path / "logs" / "small.log").read_text()
    assert fairchem_runs.logged_steps(log)[-1] == frames // 4
    assert EDGE_WARNING not in log


@pytest.mark.e2e
def test_est_fairchem_demo_runs_on_a_small_set(small_sets, tmp_path):
    """`est-fairchem demo --data <20-frame set>` (the demo config for one epoch): reused data,
    training, predictions of the four test splits, submission file."""
    import numpy as np

    from est_fairchem.tools.demo import run_demo

    config = tmp_path / "one_epoch.yml"
    config.write_text(f"includes:\n  - {DEMO_CONFIG}\noptim:\n  max_epochs: 1\n")
    summary = run_demo(config, small_sets[20], tmp_path / "runs")
    assert Path(summary["checkpoint"]).is_file()
    assert set(np.load(summary["submission"]).files) >= {"id_ids", "ood_both_forces"}
    assert "forces_mae" in summary["val"]
