"""ASE databases in fairchem's ase_db format: the made bulk databases with stress, and the
checked dataset's errors naming the file, the row and the key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from est_fairchem.data.demo_bulk import BulkSizes, make_bulk_demo
from est_fairchem.errors import InputError

LABELS = {"r_energy": True, "r_forces": True, "r_stress": True}


def _dataset(src, **config):
    from est_fairchem.data.checked_ase_db import CheckedAseDBDataset

    return CheckedAseDBDataset({"src": str(src), "a2g_args": LABELS, **config})


def test_made_bulk_rows_carry_emt_energy_forces_and_stress(bulk_db):
    from ase.calculators.emt import EMT
    from ase.db import connect

    with connect(bulk_db / "train.db") as db:
        rows = list(db.select())
    assert len(rows) == 16 and all(row.pbc.all() for row in rows)
    atoms = rows[0].toatoms()
    stored = atoms.get_stress()
    atoms.calc = EMT()  # the labels are EMT's, recomputed
    np.testing.assert_allclose(stored, atoms.get_stress(), atol=1e-10)
    assert np.abs(stored).max() > 1e-4  # strained: a stress to learn


def test_checked_dataset_reads_as_fairchems(bulk_db):
    from fairchem.core.datasets import AseDBDataset

    ours, theirs = _dataset(bulk_db / "train.db"), AseDBDataset({"src": str(bulk_db / "train.db"),
                                                               "a2g_args": LABELS})
    assert len(ours) == len(theirs) == 16
    for key in ("pos", "cell", "forces", "stress"):
        assert np.array_equal(getattr(ours[3], key), getattr(theirs[3], key))
    assert ours[3].stress.shape == (3, 3) and ours[3].energy == theirs[3].energy


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path / 'none.db'}: no such file"):
        _dataset(tmp_path / "none.db")


def test_empty_selection_is_named(bulk_db):
    with pytest.raises(InputError, match=r"train.db: no ASE database rows \(selection "
                                         r"\{'selection': 'natoms>100'\}"):
        _dataset(bulk_db / "train.db", select_args={"selection": "natoms>100"})


def _db_with_row_without_forces(path, position: int):
    """Three labelled rows; the one at ``position`` has only an energy."""
    from ase.build import bulk as ase_bulk
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.db import connect

    with connect(path) as db:
        for index in range(3):
            atoms = ase_bulk("Cu", "fcc", a=3.6 + 0.01 * index)
            labels = {"energy": -1.0 * index}
            if index != position:
                labels |= {"forces": np.zeros((1, 3)), "stress": np.zeros(6)}
            atoms.calc = SinglePointCalculator(atoms, **labels)
            db.write(atoms)
    return path


def test_first_row_without_forces_fails_before_training(tmp_path):
    path = _db_with_row_without_forces(tmp_path / "first.db", 0)
    with pytest.raises(InputError, match=r"first.db: row id 1 has no forces or stress "
                                         r"\(a2g_args r_forces, r_stress asks"):
        _dataset(path)


def test_later_row_without_forces_is_named_when_read(tmp_path):
    dataset = _dataset(_db_with_row_without_forces(tmp_path / "middle.db", 1))
    dataset[0]
    with pytest.raises(InputError, match=r"middle.db: row id 2 has no forces"):
        dataset[1]
    only_energy = _dataset(tmp_path / "middle.db", a2g_args={"r_energy": True})
    assert float(only_energy[1].energy) == -1.0  # what is not asked for is not required


def test_make_bulk_demo_keeps_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError):
        make_bulk_demo(tmp_path / "mine", sizes=BulkSizes(1, 1, 1), overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_atom_counts_for_fairchems_load_balancing(bulk_db):
    """fairchem's BalancedBatchSampler (optim.load_balancing: atoms) reads natoms metadata,
    which a plain ase_db dataset lacks (fairchem then refuses the option); the checked one
    has it, equal to the structures', also through the Subset fairchem's trainer makes."""
    from fairchem.core.common.data_parallel import BalancedBatchSampler
    from fairchem.core.datasets.base_dataset import create_dataset

    dataset = create_dataset({"format": "est_fairchem.data.CheckedAseDBDataset",
                              "src": str(bulk_db / "train.db"), "a2g_args": LABELS}, "train")
    sizes = [int(sample.natoms) for sample in dataset]
    assert dataset.metadata_hasattr("natoms")
    assert [int(dataset.get_metadata("natoms", i)) for i in range(len(dataset))] == sizes
    assert {4, 8} <= set(sizes)
    sampler = BalancedBatchSampler(dataset, batch_size=2, num_replicas=2, rank=0, seed=0,
                                   mode="atoms", on_error="raise")
    assert not sampler.disabled and sum(len(batch) for batch in sampler) == 8


def _labelled_rows(path, structures):
    from ase.calculators.emt import EMT
    from ase.db import connect

    from est_fairchem.data.demo_bulk import labelled

    with connect(path) as db:
        for atoms in structures:
            atoms.calc = EMT()
            db.write(labelled(atoms) if atoms.pbc.all() else _energy_forces(atoms))
    return path


def _energy_forces(atoms):
    from ase.calculators.singlepoint import SinglePointCalculator

    frozen = atoms.copy()
    frozen.calc = SinglePointCalculator(frozen, energy=atoms.get_potential_energy(),
                                        forces=atoms.get_forces())
    return frozen


def test_slabs_and_molecules_from_a_database_reach_the_models(tmp_path):
    """Slabs keep their OC20 tags and fixed atoms through the database; molecules (no cell,
    no periodicity) too; both predict with an EST model of their kind."""
    from fairchem.core.datasets import data_list_collater

    from est_fairchem.testing.structures import made_molecule, made_slab
    from tests.model_utils import build, small_model_config
    from tests.test_pure_est import est_config

    slabs = [made_slab(3), made_slab(4)]
    path = _labelled_rows(tmp_path / "slabs.db", [atoms.copy() for atoms in slabs])
    dataset = _dataset(path, a2g_args={"r_energy": True, "r_forces": True, "r_fixed": True})
    sample = dataset[0]
    assert sample.tags.tolist() == slabs[0].get_tags().tolist()
    assert int(sample.fixed.sum()) == len(slabs[0].constraints[0].index) > 0
    model = build(small_model_config({"grid_frame": "local"})).eval()
    out = model(data_list_collater([dataset[0], dataset[1]], otf_graph=True))
    assert out["energy"]["energy"].shape == (2,) and out["forces"]["forces"].shape == (
        sum(len(atoms) for atoms in slabs), 3)

    molecule = made_molecule()
    path = _labelled_rows(tmp_path / "molecules.db", [molecule])
    sample = _dataset(path, a2g_args={"r_energy": True, "r_forces": True})[0]
    assert not sample.pbc.any() and sample.natoms == len(molecule)
    qm9_model = build(est_config()).eval()
    prediction = qm9_model(data_list_collater([sample], otf_graph=True))
    assert torch.isfinite(prediction["u0_atomization"]["u0_atomization"]).all()


def test_made_adsorption_rows_hold_the_adsorption_energy_alone(tmp_path):
    """Each row: a relaxed slab with one adsorbate, pbc (T, T, F), one label (no forces), equal
    to E(system) - E(clean slab) - E(adsorbate) recomputed with EMT; the same for a seed."""
    from ase.calculators.emt import EMT
    from ase.db import connect
    from ase.calculators.calculator import PropertyNotImplementedError

    from est_fairchem.data.demo_adsorption import (
        AdsorptionSizes, adsorbate_energy, clean_slab_energy, make_adsorption_demo)

    sizes = AdsorptionSizes(train=3, val=1, test=1)
    make_adsorption_demo(tmp_path / "a", seed=3, sizes=sizes)
    make_adsorption_demo(tmp_path / "b", seed=3, sizes=sizes)
    with connect(tmp_path / "a" / "train.db") as db, connect(tmp_path / "b" / "train.db") as same:
        rows, again = list(db.select()), list(same.select())
    assert [r.energy for r in rows] == [r.energy for r in again]
    for row in rows:
        atoms = row.toatoms()
        assert list(atoms.pbc) == [True, True, False] and (atoms.get_tags() == 2).sum() >= 1
        with pytest.raises(PropertyNotImplementedError):
            atoms.get_forces()
        atoms.calc = EMT()
        expected = (atoms.get_potential_energy() - clean_slab_energy(row.metal, sizes.fmax,
                                                                     sizes.max_steps)
                    - adsorbate_energy(row.adsorbate))
        assert row.energy == pytest.approx(expected, abs=1e-6)
