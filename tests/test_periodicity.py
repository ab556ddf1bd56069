"""Each structure's periodicity (its ASE ``pbc``) is respected, or refused where the models
cannot treat it correctly: an ASE database mixing periodicities, a periodic row without a
cell and a NaN position are refused before training, naming the rows (real ASE databases of
EMT-labelled structures); slabs stored with pbc=(True, True, False) get no images across the
vacuum; a batch mixing periodicities, or periodic structures given to a use_pbc: false model,
are refused by the backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from est_fairchem.errors import InputError

LABELS = {"r_energy": True, "r_forces": True}


def _write(path, structures):
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.db import connect

    with connect(path) as db:
        for atoms in structures:
            atoms = atoms.copy()
            atoms.calc = EMT()
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
            frozen = atoms.copy()
            frozen.calc = SinglePointCalculator(frozen, energy=energy, forces=forces)
            db.write(frozen)
    return path


def _dataset(src, **a2g):
    from est_fairchem.data.checked_ase_db import CheckedAseDBDataset

    return CheckedAseDBDataset({"src": str(src), "a2g_args": {**LABELS, **a2g}})


def _slab(vacuum: float = 7.0, pbc=(True, True, False)):
    from ase.build import add_adsorbate, fcc111

    slab = fcc111("Cu", size=(2, 2, 2), vacuum=vacuum)
    add_adsorbate(slab, "O", 1.6, "fcc")
    slab.positions += np.random.default_rng(0).normal(0, 0.05, slab.positions.shape)
    slab.pbc = pbc
    return slab


def test_periodic_slabs_and_the_same_atoms_without_cell_are_refused_naming_the_rows(tmp_path):
    """The report's database: five periodic slabs and the same five without a cell predicted
    identical energies for each pair."""
    slabs = [_slab(pbc=True) for _ in range(5)]
    bare = [atoms.copy() for atoms in slabs]
    for atoms in bare:
        atoms.set_cell(np.zeros((3, 3)))
        atoms.pbc = False
    path = _write(tmp_path / "mixed.db", slabs + bare)
    with pytest.raises(InputError) as error:
        _dataset(path)
    message = str(error.value)
    assert message.startswith("the dataset mixes periodicities: 5 with pbc (True, True, True)")
    assert f"5 with pbc (False, False, False) ({path}: row id 6, 7, 8, 9, 10)" in message
    assert "\n" not in message


def test_a_periodic_row_without_a_cell_is_refused_naming_it(tmp_path):
    atoms = [_slab(pbc=True) for _ in range(3)]
    atoms[1].set_cell(np.zeros((3, 3)))
    atoms[1].pbc = True
    path = _write(tmp_path / "no_cell.db", atoms)
    with pytest.raises(InputError, match=rf"^{path}: row id 2: periodic \(pbc\) along a "
                                         r"direction without a cell vector"):
        _dataset(path)


def test_a_nan_position_in_a_labelled_database_is_refused_naming_the_row(tmp_path):
    """ASE drops the labels of atoms holding NaN (PropertyNotImplementedError in fairchem)."""
    from ase.db import connect

    import sqlite3

    path = _write(tmp_path / "nan.db", [_slab() for _ in range(4)])
    positions = connect(path).get(id=3).positions.copy()
    positions[2, 1] = np.nan
    with sqlite3.connect(path) as raw:  # the NaN written into the stored row, labels kept
        raw.execute("UPDATE systems SET positions=? WHERE id=3",
                    (np.ascontiguousarray(positions, dtype=float).tobytes(),))
    assert connect(path).get(id=3).energy is not None
    with pytest.raises(InputError, match=rf"^{path}: row id 3: positions or cell hold NaN or "
                                         "inf"):
        _dataset(path)


def _energy_of(model, samples) -> dict:
    from fairchem.core.datasets import data_list_collater

    with torch.no_grad():
        return model(data_list_collater(samples, otf_graph=True))


def _energy(model, samples):
    return _energy_of(model, samples)["energy"]["energy"]


@pytest.fixture(scope="module")
def eqv2():
    from tests.model_utils import build, small_model_config
    from tests.test_input_checks import TINY_EQV2_EST

    return build(small_model_config(dict(TINY_EQV2_EST))).eval()  # cutoff 6 A, use_pbc True


def test_slabs_stored_with_pbc_true_true_false_get_no_images_across_the_vacuum(tmp_path, eqv2):
    """A 2 A vacuum is thinner than the 6 A cutoff: periodic along z, the slab would meet its
    own image; stored with pbc=(True, True, False) it predicts as with a wide vacuum."""
    thin = _dataset(_write(tmp_path / "thin.db", [_slab(vacuum=1.0)]))
    wide = _dataset(_write(tmp_path / "wide.db", [_slab(vacuum=10.0)]))
    closed = _dataset(_write(tmp_path / "closed.db", [_slab(vacuum=1.0, pbc=True)]))
    assert thin[0].pbc.tolist() == [True, True, False]
    wide_sample = wide[0]
    wide_sample.pos = wide_sample.pos - wide_sample.pos[:1] + thin[0].pos[:1]  # same atoms
    e_thin, e_wide, e_closed = (_energy(eqv2, [d]) for d in (thin[0], wide_sample, closed[0]))
    assert torch.allclose(e_thin, e_wide, atol=1e-5)
    assert not torch.allclose(e_thin, e_closed, atol=1e-3)


def test_a_batch_mixing_periodicities_is_refused_by_the_backbone(tmp_path, eqv2):
    slab = _dataset(_write(tmp_path / "slab.db", [_slab()]))[0]
    bulk = _dataset(_write(tmp_path / "bulk.db", [_slab(pbc=True)]))[0]
    with pytest.raises(InputError, match=r"a batch mixes periodicities \(sid 0, fid 0: pbc "
                                         r"\(True, True, False\); sid 0, fid 0: pbc "
                                         r"\(True, True, True\)\)"):
        _energy(eqv2, [slab, bulk])


def test_periodic_structures_given_to_a_non_periodic_model_are_refused(tmp_path):
    from tests.model_utils import build
    from tests.test_pure_est import est_config

    model = build(est_config()).eval()  # use_pbc: False (QM9)
    sample = _dataset(_write(tmp_path / "bulk.db", [_slab(pbc=True)]))[0]
    with pytest.raises(InputError, match=r"periodic structures \(sid 0, fid 0: pbc "
                                         r"\(True, True, True\)\) given to a model with use_pbc: "
                                         "false"):
        _energy_of(model, [sample])
