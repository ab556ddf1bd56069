"""check_equivariance's absolute errors agree with its relative ones and its noise flag stays off
on an ordinary (rattled) slab, where forces are far above their change under rotation."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("config", ["configs/oc20/s2ef/demo/est_eqv2_demo.yml",
                                    "configs/oc20/s2ef/demo/eqv2_demo.yml"])
def test_absolute_and_relative_errors_agree_on_the_made_slab(config):
    from est_fairchem.tools.check_equivariance import check_equivariance

    result = check_equivariance(REPO / config, rotations=2, seed=1)
    # One energy per structure: relative error = |E_rot - E| / |E|, so the largest absolute change
    # over the rotations is the largest relative error times |E|.
    assert result["energy_abs_error_max"] == pytest.approx(
        result["energy_error_max"] * abs(result["energy"]), rel=1e-9)
    assert 0 < result["force_abs_error_max"] < 1e-2 * result["force_mean_abs"]
    assert result["forces_at_noise_level"] is False


def test_unreadable_structures_are_named(tmp_path):
    from est_fairchem.tools.check_equivariance import read_structure

    missing = tmp_path / "none.traj"
    with pytest.raises(FileNotFoundError, match=f"structure file not found: {missing}"):
        read_structure(missing)
    garbage = tmp_path / "notes.xyz"
    garbage.write_text("not a structure\n")
    with pytest.raises(ValueError, match="notes.xyz: ASE cannot read a structure"):
        read_structure(garbage)
    assert garbage.read_text() == "not a structure\n"  # the user's file is left as it was


def test_progress_line_names_the_structure_and_its_edges():
    from est_fairchem.tools.check_equivariance import check_equivariance

    lines: list[str] = []
    result = check_equivariance(REPO / "configs/oc20/s2ef/demo/eqv2_demo.yml", rotations=1,
                                progress=lines.append)
    assert len(lines) == 1 and f"({result['atoms']} atoms, {result['edges']} edges" in lines[0]
    assert result["edges"] > result["atoms"]
