"""`est-fairchem make-demo-data`: fairchem-readable OC20-style LMDBs, deterministic, safe."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from est_fairchem.data.demo_s2ef import OOD_METALS, S2EF_SPLITS
from tests.model_utils import est_fairchem_cli, lmdb_samples


def _make(out, *extra):
    return subprocess.run(
        [*est_fairchem_cli(), "make-demo-data", "--task", "s2ef",
         "--out", str(out), "--systems", "4", "--frames", "2", *extra],
        capture_output=True, text=True,
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "s2ef"
    result = _make(out)
    assert result.returncode == 0, result.stderr
    return out


def test_fairchem_lmdb_dataset_reads_every_split(demo_dir):
    """Read through fairchem's LmdbDataset (inside lmdb_samples)."""
    metadata = json.loads((demo_dir / "metadata.json").read_text())
    for split in S2EF_SPLITS:
        samples = lmdb_samples(demo_dir / split)
        assert len(samples) == metadata["samples"][split] > 0
        sample = samples[0]
        n = int(sample.natoms)
        assert sample.pos.shape == (n, 3) and sample.forces.shape == (n, 3)
        assert sample.cell.shape == (1, 3, 3)
        assert set(sample.tags.tolist()) == {0, 1, 2}
        assert bool(((sample.tags == 0) == (sample.fixed == 1)).all())
        assert isinstance(float(sample.energy), float)


def test_ood_splits_hold_unseen_elements(demo_dir):
    from ase.data import chemical_symbols

    def symbols(split):
        found = set()
        for sample in lmdb_samples(demo_dir / split):
            found |= {chemical_symbols[z] for z in sample.atomic_numbers.tolist()}
        return found

    ood_metals = set(OOD_METALS)
    assert not symbols("train") & ood_metals
    assert symbols("test_ood_cat") & ood_metals
    assert symbols("test_ood_both") & ood_metals
    assert not symbols("test_ood_ads") & ood_metals


def test_energies_and_forces_are_emt_labels(demo_dir):
    from ase import Atoms
    from ase.calculators.emt import EMT

    sample = lmdb_samples(demo_dir / "val")[0]
    atoms = Atoms(numbers=sample.atomic_numbers.numpy(), positions=sample.pos.numpy(),
                  cell=sample.cell[0].numpy(), pbc=True)
    atoms.calc = EMT()
    assert abs(atoms.get_potential_energy() - float(sample.energy)) < 1e-4
    assert np.abs(atoms.get_forces() - sample.forces.numpy()).max() < 1e-3


def test_same_seed_same_data_and_no_silent_overwrite(demo_dir, tmp_path):
    again = tmp_path / "again"
    assert _make(again).returncode == 0
    first = [s.energy for s in lmdb_samples(demo_dir / "train")]
    second = [s.energy for s in lmdb_samples(again / "train")]
    assert first == second
    before = (again / "train" / "data.lmdb").stat().st_mtime_ns
    refused = _make(again, "--seed", "1")
    assert refused.returncode != 0
    assert "already exists" in refused.stderr and "--overwrite" in refused.stderr
    assert (again / "train" / "data.lmdb").stat().st_mtime_ns == before
    assert _make(again, "--seed", "1", "--overwrite").returncode == 0
    assert [s.energy for s in lmdb_samples(again / "train")] != first
    assert not list(tmp_path.glob(".again.*"))  # no partial folders left behind
