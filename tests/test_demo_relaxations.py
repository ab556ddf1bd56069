"""`est-fairchem make-demo-data --task is2re|is2rs`: initial structures and EMT relaxations."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from est_fairchem.data.demo_relaxations import RELAXATION_SPLITS
from tests.model_utils import est_fairchem_cli, lmdb_samples


@pytest.fixture(scope="module")
def relax_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "is2rs"
    result = subprocess.run(
        [*est_fairchem_cli(), "make-demo-data", "--task", "is2rs",
         "--out", str(out), "--systems", "4"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    return out


def _atoms(sample, positions):
    from ase import Atoms
    from ase.calculators.emt import EMT

    atoms = Atoms(numbers=sample.atomic_numbers.numpy().astype(int), positions=positions,
                  cell=sample.cell.numpy()[0], pbc=True)
    atoms.calc = EMT()
    return atoms


def test_records_hold_oc20_is2re_is2rs_fields(relax_dir):
    metadata = json.loads((relax_dir / "metadata.json").read_text())
    assert metadata["task"] == "is2rs"
    for split in RELAXATION_SPLITS:
        samples = lmdb_samples(relax_dir / split)
        assert len(samples) == metadata["samples"][split] > 0
        for sample in samples:
            n = int(sample.natoms)
            assert sample.pos.shape == sample.pos_relaxed.shape == (n, 3)
            assert isinstance(sample.y_init, float) and isinstance(sample.y_relaxed, float)


def test_relaxed_structures_are_emt_minima_of_the_initial_ones(relax_dir):
    """y_relaxed is EMT's energy at pos_relaxed, below y_init; fixed atoms never move; the
    relaxed free atoms are within fmax."""
    for sample in lmdb_samples(relax_dir / "val"):
        initial = _atoms(sample, sample.pos.numpy().astype(float))
        relaxed = _atoms(sample, sample.pos_relaxed.numpy().astype(float))
        assert initial.get_potential_energy() == pytest.approx(sample.y_init, abs=1e-4)
        assert relaxed.get_potential_energy() == pytest.approx(sample.y_relaxed, abs=1e-4)
        assert sample.y_relaxed < sample.y_init
        fixed = sample.fixed.numpy() == 1
        moved = np.linalg.norm(sample.pos_relaxed.numpy() - sample.pos.numpy(), axis=1)
        assert moved[fixed].max() == 0 and moved[~fixed].max() > 1e-3
        assert moved.max() < 1.5  # a displacement, not a lattice vector
        assert np.linalg.norm(relaxed.get_forces()[~fixed], axis=1).max() < 0.06
