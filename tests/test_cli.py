"""The `est-fairchem` console script: every subcommand documents itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.model_utils import est_fairchem_cli

SUBCOMMANDS = {
    "make-demo-data": ["--task", "--out", "--seed", "--systems", "--overwrite", "qm9", "bulk", "oc22"],
    "prepare-qm9": ["--raw", "--out", "--exclude", "--seed", "--subtract-atomrefs",
                    "--overwrite", "110,000"],
    "count-params": ["configs"],
    "demo": ["--task", "--config", "--data", "--run-dir"],
    "check-equivariance": ["--checkpoint", "--structure", "--rotations"],
    "warm-start": ["--from", "--config", "--out", "--symmetry-breaking", "--overwrite"],
}


def test_top_level_help_lists_subcommands():
    out = subprocess.run([*est_fairchem_cli(), "--help"], capture_output=True, text=True, check=True).stdout
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name,options", SUBCOMMANDS.items())
def test_subcommand_help(name, options):
    out = subprocess.run([*est_fairchem_cli(), name, "--help"], capture_output=True, text=True, check=True).stdout
    for option in options:
        assert option in out


def test_make_demo_data_bulk_writes_ase_databases_with_stress(tmp_path):
    from ase.db import connect

    out = tmp_path / "bulk"
    result = subprocess.run([*est_fairchem_cli(), "make-demo-data", "--task", "bulk", "--out",
                             str(out), "--systems", "8"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    counts = {}
    for split in ("train", "val", "test"):
        assert str(out / f"{split}.db") in result.stdout
        with connect(out / f"{split}.db") as db:
            rows = list(db.select())
        counts[split] = len(rows)
        assert all(row.get("stress") is not None and row.get("forces") is not None
                   for row in rows)
    assert counts == {"train": 8, "val": 2, "test": 2}


def test_missing_config_names_the_file(tmp_path):
    missing = tmp_path / "nope.yml"
    result = subprocess.run([*est_fairchem_cli(), "count-params", str(missing)], capture_output=True, text=True)
    assert result.returncode != 0
    assert f"config file not found: {missing}" in result.stderr


def _errors(output: str) -> tuple[float, float]:
    import re

    energy = float(re.search(r"energy relative error .*: max ([0-9.e+-]+)", output).group(1))
    force = float(re.search(r"force relative error .*: +max ([0-9.e+-]+)", output).group(1))
    return energy, force


@pytest.mark.parametrize("config", ["configs/oc20/s2ef/demo/est_eqv2_demo.yml",
                                    "configs/oc20/s2ef/demo/eqv2_demo.yml"])
def test_check_equivariance_prints_small_errors_for_est_and_plain_models(config):
    """Measured with random weights: energy ~2e-7, forces ~8e-5 for both (float32 Wigner floor)."""
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([*est_fairchem_cli(), "check-equivariance", config, "--rotations", "3"],
                            capture_output=True, text=True, cwd=repo)
    assert result.returncode == 0, result.stderr[-2000:]
    energy, force = _errors(result.stdout)
    assert energy < 2e-6 and force < 1e-3


def test_check_equivariance_names_a_missing_checkpoint(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    missing = tmp_path / "none.pt"
    result = subprocess.run(
        [*est_fairchem_cli(), "check-equivariance", "configs/oc20/s2ef/demo/est_eqv2_demo.yml",
         "--checkpoint", str(missing)], capture_output=True, text=True, cwd=repo)
    assert result.returncode != 0
    assert f"checkpoint not found: {missing}" in result.stderr


def test_check_equivariance_flags_forces_at_noise_level_on_a_perfect_crystal(tmp_path):
    """A perfect fcc crystal's forces vanish by symmetry; what a model predicts there is its own
    symmetry breaking (measured: mean |F| ~1e-6-1e-4 eV/A), as large as the change under
    rotation, so the relative force error is meaningless and the tool says so."""
    from ase.build import bulk

    crystal = tmp_path / "cu_bulk.traj"
    bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2)).write(crystal)
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [*est_fairchem_cli(), "check-equivariance", "configs/oc20/s2ef/demo/eqv2_demo.yml",
         "--structure", str(crystal), "--rotations", "2"], capture_output=True, text=True, cwd=repo)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "forces are no larger than the change under rotation" in result.stdout
    assert str(crystal) in result.stdout and "(32 atoms, " in result.stdout
