"""fairchem models on molecules without torch_cluster: EquiformerV2 (hydra backbone) and any
non-hydra model through RenamedOutputs, whose output takes the target's name (the QM9
comparison's EquiformerV2 and EquiformerV3 rows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.neighborlist import neighbor_list
from fairchem.core.datasets import data_list_collater
from fairchem.core.preprocessing import AtomsToGraphs

from est_fairchem.testing.equivariance import random_rotation
from est_fairchem.tools.model_from_config import build_model

SMALL_EQV2 = {
    "use_pbc": False, "regress_forces": False, "otf_graph": True, "max_neighbors": 500,
    "max_radius": 3.0, "max_num_elements": 10, "num_layers": 1, "sphere_channels": 8,
    "attn_hidden_channels": 8, "num_heads": 2, "attn_alpha_channels": 4,
    "attn_value_channels": 4, "ffn_hidden_channels": 8, "lmax_list": [2], "mmax_list": [2],
    "grid_resolution": 10, "edge_channels": 8, "num_distance_basis": 8, "avg_degree": 5.0,
    "avg_num_nodes": 9.0,
}


def _batch(rotation: np.ndarray | None = None):
    structures = []
    for name in ("CH3CH2OH", "C6H6"):
        atoms = molecule(name)
        atoms.pbc = False
        if rotation is not None:
            atoms.positions = atoms.positions @ rotation.T
        structures.append(atoms)
    a2g = AtomsToGraphs(r_energy=False, r_forces=False, r_distances=False, r_edges=False)
    data = [a2g.convert(atoms) for atoms in structures]
    for index, item in enumerate(data):
        item.sid = index
    return data_list_collater(data, otf_graph=True), structures


def _rotation(seed: int) -> np.ndarray:
    return random_rotation(torch.Generator().manual_seed(seed)).double().numpy()


def test_equiformer_v2_builds_the_radius_graph_of_molecules_itself():
    torch.manual_seed(0)
    model = build_model({"model": {
        "name": "hydra", "otf_graph": True,
        "backbone": {"model": "est_fairchem.models.EquiformerV2Backbone", **SMALL_EQV2},
        "heads": {"homo": {"module": "equiformerV2_scalar_head", "output_name": "homo"}}}})
    model.eval()
    batch, structures = _batch()
    graph = model.backbone.generate_graph(batch)
    expected = sum(len(neighbor_list("i", atoms, 3.0)) for atoms in structures)
    assert graph.edge_index.shape[1] == expected
    vectors = batch.pos[graph.edge_index[0]] - batch.pos[graph.edge_index[1]]
    torch.testing.assert_close(graph.edge_distance_vec, vectors)
    with torch.no_grad():
        homo = model(batch)["homo"]["homo"]
        rotated = model(_batch(_rotation(1))[0])["homo"]["homo"]
    assert homo.shape == (2,) and torch.isfinite(homo).all()
    torch.testing.assert_close(rotated, homo, rtol=1e-3, atol=1e-4)  # an invariant target


def test_a_non_hydra_model_answers_under_the_targets_name():
    torch.manual_seed(0)
    wrapped = {"name": "equiformer_v2", **SMALL_EQV2}
    model = build_model({"model": {"name": "est_fairchem.models.RenamedOutputs",
                                   "otf_graph": True, "rename": {"energy": "homo"},
                                   "molecular_graph": True, "model": wrapped}})
    model.eval()
    with torch.no_grad():
        out = model(_batch()[0])
        rotated = model(_batch(_rotation(2))[0])
    assert set(out) == {"homo"} and out["homo"].numel() == 2
    torch.testing.assert_close(rotated["homo"], out["homo"], rtol=1e-3, atol=1e-4)


def test_molecular_graphs_need_a_non_periodic_model():
    from est_fairchem.errors import InputError

    with pytest.raises(InputError, match="use_pbc: False"):
        build_model({"model": {"name": "est_fairchem.models.RenamedOutputs",
                               "rename": {"energy": "homo"}, "molecular_graph": True,
                               "model": {"name": "equiformer_v2", **SMALL_EQV2,
                                         "use_pbc": True}}})
