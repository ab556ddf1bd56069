"""Helpers for backbone tests: small models built through fairchem's registry, float64 graphs."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO / "configs/oc20/s2ef/demo/eqv2_small.yml"


def small_model_config(est: dict | None = None, **backbone_overrides) -> dict:
    """The demo's small model section; with ``est`` it becomes the EST backbone."""
    import yaml

    config = yaml.safe_load(DEMO_MODEL.read_text())["model"]
    config = copy.deepcopy(config)
    if est is not None:
        config["backbone"]["model"] = "est_fairchem.models.EquiformerV2ESTBackbone"
        config["backbone"]["est"] = est
    config["backbone"].update(backbone_overrides)
    return {"model": config}


def build(config: dict, seed: int = 0) -> torch.nn.Module:
    from est_fairchem.tools.model_from_config import build_model

    torch.manual_seed(seed)
    return build_model(config)


def slab_atoms(seed: int = 3):
    """A made slab + adsorbate (OC20 tags), slightly rattled so no symmetry hides errors."""
    from est_fairchem.data.demo_s2ef import make_slab_with_adsorbate

    rng = np.random.default_rng(seed)
    atoms = make_slab_with_adsorbate("Cu", "CO", rng)
    atoms.positions += rng.normal(0, 0.05, size=atoms.positions.shape)
    return atoms


def graph_batch(atoms_list, radius: float, dtype=torch.float64):
    """A fairchem batch with radius graphs built beforehand in full precision.

    fairchem's on-the-fly periodic graphs are float32 only, so float64 tests bring their own:
    ASE's neighbour list (every image within ``radius``) on the unwrapped positions, in
    fairchem's convention ``edge_index = [neighbour, centre]``,
    ``vec = pos[neighbour] - pos[centre] + offset @ cell``.
    """
    from ase.neighborlist import neighbor_list
    from fairchem.core.datasets import data_list_collater
    from fairchem.core.preprocessing import AtomsToGraphs

    a2g = AtomsToGraphs(r_edges=False, r_fixed=True, r_pbc=True)
    data = []
    for atoms in atoms_list:
        sample = a2g.convert(atoms)
        centre, neighbour, shift = neighbor_list("ijS", atoms, radius)
        sample.pos = torch.as_tensor(atoms.positions, dtype=dtype)
        sample.cell = torch.as_tensor(np.array(atoms.cell), dtype=dtype).view(1, 3, 3)
        sample.edge_index = torch.as_tensor(np.stack([neighbour, centre]), dtype=torch.long)
        sample.cell_offsets = torch.as_tensor(shift, dtype=dtype)
        sample.nedges = len(centre)
        data.append(sample)
    return data_list_collater(data, otf_graph=False)


def rotated(atoms, rotation: np.ndarray):
    """Atoms and cell rotated by the 3x3 matrix ``rotation``."""
    out = atoms.copy()
    out.positions = atoms.positions @ rotation.T
    out.set_cell(np.array(atoms.cell) @ rotation.T, scale_atoms=False)
    return out
