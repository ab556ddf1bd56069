"""Structures and float64 graphs for equivariance checks of fairchem models."""

from __future__ import annotations

import numpy as np
import torch


def made_slab(seed: int = 3, metal: str = "Cu", adsorbate: str = "CO",
              rng: np.random.Generator | None = None):
    """A made fcc(111) ``metal`` slab with an ``adsorbate`` (OC20 tags), rattled by 0.05 A so no
    symmetry hides errors; drawn from ``rng`` when given (a series of slabs), else ``seed``."""
    from est_fairchem.data.demo_s2ef import make_slab_with_adsorbate

    rng = np.random.default_rng(seed) if rng is None else rng
    atoms = make_slab_with_adsorbate(metal, adsorbate, rng)
    atoms.positions += rng.normal(0, 0.05, size=atoms.positions.shape)
    return atoms


def made_molecule(seed: int = 3):
    """Ethanol (H, C, O: within QM9's elements) without a cell, rattled by 0.05 A so no
    symmetry hides errors."""
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    atoms.positions += np.random.default_rng(seed).normal(0, 0.05, size=atoms.positions.shape)
    return atoms


def graph_batch(atoms_list, radius: float, dtype: torch.dtype = torch.float64):
    """A fairchem batch with radius graphs built beforehand in full precision.

    fairchem's on-the-fly periodic graphs are float32 only, so float64 checks bring their own:
    ASE's neighbour list (every image within ``radius``) on the unwrapped positions, in
    fairchem's convention ``edge_index = [neighbour, centre]``,
    ``vec = pos[neighbour] - pos[centre] + offset @ cell``. Edges are sorted by centre,
    neighbour and offset, so a small motion that keeps the edge set keeps their order (and
    EquiformerV2's random per-edge frames, drawn in edge order, stay with their edges).
    """
    from ase.neighborlist import neighbor_list
    from fairchem.core.datasets import data_list_collater
    from fairchem.core.preprocessing import AtomsToGraphs

    a2g = AtomsToGraphs(r_edges=False, r_fixed=True, r_pbc=True)
    data = []
    for atoms in atoms_list:
        sample = a2g.convert(atoms)
        centre, neighbour, shift = neighbor_list("ijS", atoms, radius)
        order = np.lexsort((shift[:, 2], shift[:, 1], shift[:, 0], neighbour, centre))
        centre, neighbour, shift = centre[order], neighbour[order], shift[order]
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
