"""NaN or infinite positions and cells are refused, naming the system, by every EST backbone's
forward (so by training, validation and prediction alike) and by check-equivariance's
structure reader. Without the check the atom silently lost its edges and the model returned
finite numbers. The real `fairchem --mode predict` run on such a record is in
tests/test_checkpoint_options_e2e.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from est_fairchem.errors import InputError
from tests.model_utils import build, small_model_config
from tests.test_equiformer import SMALL_EST, equiformer_config
from tests.test_pure_est import est_config

TINY_EQV2_EST = {"num_points": 16, "num_steerable_experts": 1, "num_spherical_experts": 1,
                 "grid_frame": "global"}


def _batch(atoms_list, sids: list[int]):
    """A fairchem batch (graphs built by the model) of ``atoms_list`` with these sids and
    fid 0."""
    from fairchem.core.datasets import data_list_collater
    from fairchem.core.preprocessing import AtomsToGraphs

    a2g = AtomsToGraphs(r_edges=False, r_fixed=True, r_pbc=True)
    data = []
    for atoms, sid in zip(atoms_list, sids):
        sample = a2g.convert(atoms, sid=sid)
        sample.fid = 0
        data.append(sample)
    return data_list_collater(data, otf_graph=True)


def _slab_batch(position=None, cell=None):
    """Two made slabs, sids 11 and 12; in the second, atom 3 gets ``position`` and/or the cell
    entry [2, 2] gets ``cell`` (set in the batch: fairchem's AtomsToGraphs wraps positions
    into the cell, so an infinite cell would make NaN positions as well)."""
    from est_fairchem.testing.structures import made_slab

    good = made_slab()
    batch = _batch([good, made_slab(seed=4)], sids=[11, 12])
    if position is not None:
        batch.pos[len(good) + 3] = torch.tensor(position)
    if cell is not None:
        batch.cell[1, 2, 2] = cell
    return batch


PERIODIC_MODELS = {
    "EquiformerV2ESTBackbone": lambda: small_model_config(est=TINY_EQV2_EST),
    "EquiformerESTBackbone": lambda: equiformer_config(SMALL_EST, otf_graph=True),
    "EquiformerBackbone": lambda: equiformer_config(otf_graph=True),
}


@pytest.mark.parametrize("name", list(PERIODIC_MODELS))
@pytest.mark.parametrize("position, cell, expected", [
    ((np.nan, 0.0, 1.0), None, "sid 12, fid 0: pos holds NaN"),
    (None, np.inf, "sid 12, fid 0: cell holds inf"),
    ((np.inf, np.nan, 0.0), np.nan, "sid 12, fid 0: pos holds NaN and inf, cell holds NaN"),
])
def test_periodic_backbones_refuse_non_finite_structures(name, position, cell, expected):
    model = build(PERIODIC_MODELS[name]()).eval()
    batch = _slab_batch(position, cell)
    with pytest.raises(InputError, match="non-finite input structure") as error:
        model(batch)
    assert str(error.value).endswith(expected)  # the finite system 11 is not named
    assert "\n" not in str(error.value)


def test_finite_structures_pass():
    from est_fairchem.models.common.input_checks import check_finite_structures

    model = build(small_model_config(est=TINY_EQV2_EST)).eval()
    batch = _slab_batch()
    assert torch.isfinite(model(batch)["energy"]["energy"]).all()
    check_finite_structures(batch)  # no error


def test_pure_est_refuses_non_finite_positions_of_a_molecule():
    """The pure EST (molecules, no cell): positions are checked, the unused cell is not."""
    from ase.build import molecule

    model = build(est_config()).eval()
    good, bad = molecule("CH3CH2OH"), molecule("H2O")
    bad.positions[1, 2] = np.nan
    batch = _batch([good, bad], sids=[5, 6])
    with pytest.raises(InputError, match=r"sid 6, fid 0: pos holds NaN$"):
        model(batch)
    batch = _batch([good], sids=[5])
    batch.cell[:] = np.nan  # never read by a non-periodic model
    assert torch.isfinite(model(batch)["u0_atomization"]["u0_atomization"]).all()


@pytest.mark.parametrize("what", ["positions", "cell"])
def test_check_equivariance_refuses_structures_with_non_finite_coordinates(tmp_path, what):
    from est_fairchem.testing.structures import made_slab
    from est_fairchem.tools.check_equivariance import read_structure

    atoms = made_slab()
    if what == "positions":
        atoms.positions[0, 1] = np.nan
    else:
        cell = atoms.cell.array.copy()
        cell[2, 2] = np.inf
        atoms.set_cell(cell, scale_atoms=False)
    path = tmp_path / "slab.traj"
    atoms.write(path)
    expected = "NaN" if what == "positions" else "inf"
    with pytest.raises(InputError, match=f"slab.traj: its {what} hold {expected}; expected finite"):
        read_structure(path)


@pytest.mark.parametrize("name", list(PERIODIC_MODELS))
def test_backbones_refuse_a_batch_without_edges(name):
    """Two atoms 9 Å apart in a 30 Å box (positions in the wrong units, say): no edge within
    the cutoff. EquiformerV2 would fail in torch's min() on an empty tensor, Equiformer would
    predict from the atom embeddings alone."""
    from ase import Atoms

    far = Atoms("Cu2", positions=[[1, 1, 1], [10, 1, 1]], cell=[30, 30, 30], pbc=True)
    model = build(PERIODIC_MODELS[name]()).eval()
    with pytest.raises(InputError, match=r"a batch of 2 structure\(s\) \(sid 21, 22\) has no "
                                         r"edge: no atom has a neighbour within the cutoff"):
        model(_batch([far, far.copy()], sids=[21, 22]))
