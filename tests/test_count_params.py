"""`est-fairchem count-params`: the paper-size configs have the paper's parameter counts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _count(config: str) -> float:
    result = subprocess.run(
        [sys.executable, "-m", "est_fairchem.cli", "count-params", config],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r": ([0-9.]+)M parameters", result.stdout)
    assert match, result.stdout
    return float(match.group(1))


def test_s2ef_all_est_config_is_the_papers_45M():
    assert abs(_count("configs/oc20/s2ef/all/est_eqv2_N@8_L@4_M@2_45M.yml") - 45.0) / 45.0 < 0.05


def test_plain_equiformer_v2_config_is_31M():
    assert _count("configs/oc20/s2ef/all/eqv2_N@8_L@4_M@2_31M.yml") == 31.06


def test_is2re_est_config_is_the_papers_32M_and_plain_equiformer_beside_it():
    """The paper's IS2RE EST has 32.47M parameters; Equiformer's IS2RE model ~9M."""
    est = _count("configs/oc20/is2re/all/est_equiformer_L@1_6blocks_32M.yml")
    plain = _count("configs/oc20/is2re/all/equiformer_L@1_6blocks.yml")
    assert abs(est - 32.47) / 32.47 < 0.05
    assert 8.0 < plain < 10.0
