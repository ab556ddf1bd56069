"""Normalizer values written in a config (not fitted, not from a file) are checked against a
sample of the training targets when the checked datasets are built (real ASE databases and
LMDB files): the demo's values on other data are refused naming both, values that fit pass,
and `fit:` is not second-guessed."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from est_fairchem.errors import InputError

DEMO_VALUES = {"energy": {"mean": 2.66, "stdev": 0.75}}  # the IS2RE demo's normalizer


def _structures(count: int = 30, seed: int = 0):
    """EMT-free made rows: small Cu cells with energies around -3.49 eV (stdev 1.43)."""
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    out = []
    for energy in rng.normal(-3.49, 1.43, count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.calc = SinglePointCalculator(atoms, energy=float(energy),
                                           forces=rng.normal(0, 0.3, (len(atoms), 3)))
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    from ase.db import connect

    path = tmp_path_factory.mktemp("norm") / "train.db"
    with connect(path) as db:
        for atoms in _structures():
            db.write(atoms)
    return path


def _ase_dataset(path, normalizer):
    from est_fairchem.data.checked_ase_db import CheckedAseDBDataset

    return CheckedAseDBDataset({"src": str(path), "a2g_args": {"r_energy": True},
                                "transforms": {"normalizer": copy.deepcopy(normalizer)}})


def test_the_demo_values_on_other_data_are_refused_naming_both(database):
    with pytest.raises(InputError) as error:
        _ase_dataset(database, DEMO_VALUES)
    message = str(error.value)
    assert message.startswith(f"{database}: the normalizer of energy in the config (mean 2.66, "
                              "stdev 0.75) does not fit the training data (mean -3.")
    assert "normalizer: {fit: {targets: {energy: {}}}}" in message and "\n" not in message


def test_written_values_beside_a_fit_of_the_same_target_are_checked(database):
    """fairchem uses the written values then (its warning speaks of a file)."""
    with pytest.raises(InputError, match="the normalizer of energy in the config"):
        _ase_dataset(database, {**DEMO_VALUES, "fit": {"targets": {"energy": {}}}})


def test_values_that_fit_the_data_and_fitted_normalizers_pass(database):
    energies = np.array([atoms.get_potential_energy() for atoms in _structures()])
    fitting = {"energy": {"mean": float(energies.mean()), "rmsd": float(energies.std())}}
    assert len(_ase_dataset(database, fitting)) == 30
    assert len(_ase_dataset(database, {"fit": {"targets": {"energy": {}}}})) == 30
    # element references change what the normalizer sees: not checked
    referenced = {"normalizer": DEMO_VALUES, "element_references": {"fit": {"targets":
                                                                            ["energy"]}}}
    from est_fairchem.data.normalizer_check import written_normalizers
    assert written_normalizers(referenced) == {}


def test_an_lmdb_dataset_with_a_wrong_forces_normalizer_is_refused(tmp_path):
    from fairchem.core.preprocessing import AtomsToGraphs

    from est_fairchem.data.checked_lmdb import CheckedLmdbDataset
    from est_fairchem.data.lmdb_writer import write_lmdb

    a2g = AtomsToGraphs(r_energy=True, r_forces=True, r_edges=False, r_pbc=True)
    samples = []
    for index, atoms in enumerate(_structures(20)):
        sample = a2g.convert(atoms)
        sample.sid, sample.fid = index, 0
        samples.append(sample)
    write_lmdb(tmp_path / "train.lmdb", samples)
    config = {"src": str(tmp_path / "train.lmdb"),
              "transforms": {"normalizer": {"forces": {"mean": 0, "stdev": 30.0}}}}
    with pytest.raises(InputError, match=rf"^{tmp_path / 'train.lmdb'}: the normalizer of forces "
                                         r"in the config \(mean 0, stdev 30\) does not fit"):
        CheckedLmdbDataset(config)
    config["transforms"]["normalizer"]["forces"]["stdev"] = 0.3
    assert len(CheckedLmdbDataset(config)) == 20


def test_only_the_train_split_of_enough_structures_is_checked(database, tmp_path):
    """fairchem's val and test splits inherit train's transforms (and may differ from it on
    purpose, out of distribution); a handful of structures says little about a spread."""
    from ase.db import connect
    from fairchem.core.datasets.base_dataset import create_dataset

    config = {"format": "est_fairchem.data.CheckedAseDBDataset", "src": str(database),
              "a2g_args": {"r_energy": True}, "transforms": {"normalizer": DEMO_VALUES}}
    assert len(create_dataset(copy.deepcopy(config), "val")) == 30
    with pytest.raises(InputError, match="the normalizer of energy"):
        create_dataset(copy.deepcopy(config), "train")
    few = tmp_path / "few.db"
    with connect(few) as db:
        for atoms in _structures(4):
            db.write(atoms)
    assert len(create_dataset({**copy.deepcopy(config), "src": str(few)}, "train")) == 4
