"""Small energy-only ASE databases of adsorption energies, labelled by ASE's EMT.

The energy-only route of ``docs/guide/own_data.md`` ("I have relaxed structures and
energies") reads a user's database of relaxed structures with one energy each and no forces;
these made databases stand in for one. ``out/{train,val,test}.db``: one row per relaxed
system, an fcc(111) slab (2x2x3 cells, 7 Å of vacuum on each side, stored with ASE's slab
periodicity ``pbc=(True, True, False)``) of one metal of :data:`METALS` with one adsorbate of
:data:`ADSORBATES`, BFGS-relaxed with EMT (subsurface fixed, OC20 tags 0/1/2), and one label:
the adsorption energy

    E_ads = E(slab + adsorbate, relaxed) - E(clean slab, relaxed) - E(adsorbate, in vacuum)

in eV, stored as the row's ``energy`` with a ``SinglePointCalculator`` (no forces, no stress).
Such energies are already referenced, as a user's adsorption energies are: per-element
references do not help them. Each row carries ``metal`` and ``adsorbate`` as key-value pairs,
so ASE selections such as ``metal=Pt`` pick rows. ``metadata.json`` holds the sizes.
Deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

METALS = ("Cu", "Ag", "Pt", "Ni", "Pd", "Au")
ADSORBATES = ("H", "O", "N", "C")
SPLITS = ("train", "val", "test")
SLAB_PBC = (True, True, False)


@dataclass(frozen=True)
class AdsorptionSizes:
    """Systems per split, and the EMT relaxation's convergence settings."""

    train: int = 48
    val: int = 12
    test: int = 12
    fmax: float = 0.05
    max_steps: int = 300

    def of(self, split: str) -> int:
        return getattr(self, split)


@lru_cache(maxsize=None)
def clean_slab_energy(metal: str, fmax: float, max_steps: int) -> float:
    """EMT energy (eV) of the relaxed clean 2x2x3 fcc(111) slab of ``metal``."""
    from ase.build import fcc111
    from ase.constraints import FixAtoms

    from est_fairchem.data.demo_relaxations import relax_with_emt

    slab = fcc111(metal, size=(2, 2, 3), vacuum=7.0)
    slab.set_constraint(FixAtoms(mask=slab.get_tags() > 1))
    relaxed, _ = relax_with_emt(slab, fmax, max_steps)
    return float(relaxed.get_potential_energy())


@lru_cache(maxsize=None)
def adsorbate_energy(adsorbate: str) -> float:
    """EMT energy (eV) of the adsorbate alone in a 12 Å box."""
    from ase import Atoms
    from ase.calculators.emt import EMT

    atoms = Atoms(adsorbate, positions=[(6.0, 6.0, 6.0)], cell=[12.0] * 3)
    atoms.calc = EMT()
    return float(atoms.get_potential_energy())


def adsorption_row(metal: str, adsorbate: str, rng: np.random.Generator, sizes: AdsorptionSizes):
    """One relaxed slab with ``adsorbate`` on ``metal``, its adsorption energy attached
    (``SinglePointCalculator``, energy only)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from est_fairchem.data.demo_relaxations import relax_with_emt
    from est_fairchem.data.demo_s2ef import make_slab_with_adsorbate

    initial = make_slab_with_adsorbate(metal, adsorbate, rng)
    relaxed, _ = relax_with_emt(initial, sizes.fmax, sizes.max_steps)
    energy = (float(relaxed.get_potential_energy())
              - clean_slab_energy(metal, sizes.fmax, sizes.max_steps) - adsorbate_energy(adsorbate))
    row = relaxed.copy()
    row.pbc = SLAB_PBC
    row.calc = SinglePointCalculator(row, energy=energy)
    return row


def make_adsorption_demo(out: Path, seed: int = 0, sizes: AdsorptionSizes = AdsorptionSizes(),
                         overwrite: bool = False) -> dict:
    """Write ``out/{train,val,test}.db`` and ``out/metadata.json`` (atomically); return the
    metadata (rows per split, seed, metals, adsorbates, relaxation settings)."""
    from est_fairchem.data.demo_bulk import write_split_databases

    rng = np.random.default_rng(seed)

    def write_row(db) -> None:
        metal = METALS[rng.integers(len(METALS))]
        adsorbate = ADSORBATES[rng.integers(len(ADSORBATES))]
        db.write(adsorption_row(metal, adsorbate, rng, sizes), metal=metal, adsorbate=adsorbate)

    return write_split_databases(
        out, {split: sizes.of(split) for split in SPLITS}, write_row,
        {"task": "adsorption", "seed": seed, "sizes": asdict(sizes), "metals": list(METALS),
         "adsorbates": list(ADSORBATES), "pbc": list(SLAB_PBC),
         "labels": "energy: EMT adsorption energy (eV), relaxed structures, no forces"},
        overwrite)
