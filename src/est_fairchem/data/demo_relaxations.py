"""Small OC20-style IS2RE / IS2RS datasets: initial slab + adsorbate structures and their
EMT relaxations.

OC20's IS2RE and IS2RS LMDBs hold the same records, and so do these: each sample is a
torch-geometric ``Data`` with the *initial* structure (``pos``, ``cell`` [1, 3, 3],
``atomic_numbers``, ``natoms``, ``tags``, ``fixed``), ``pos_relaxed`` (the structure ASE's
BFGS relaxed with EMT, free atoms only moving), ``y_init`` and ``y_relaxed`` (EMT total
energies in eV of the initial and relaxed structures) and ``sid``. Configs map ``y_relaxed``
to ``energy`` (IS2RE training) or to ``energy_relaxed`` (fairchem's ``run-relaxations``).
Splits as for S2EF (``train``, ``val``, four test splits). Deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from est_fairchem.data.demo_s2ef import (
    S2EF_SPLITS, TEST_SPLITS, make_slab_with_adsorbate, write_demo_splits,
)

RELAXATION_SPLITS = S2EF_SPLITS
__all__ = ["RELAXATION_SPLITS", "TEST_SPLITS", "RelaxationSizes", "make_relaxation_demo"]


@dataclass(frozen=True)
class RelaxationSizes:
    """Systems per split, and the EMT relaxation's convergence settings."""

    train_systems: int = 64
    fmax: float = 0.05
    max_steps: int = 300

    @property
    def eval_systems(self) -> int:
        return max(2, self.train_systems // 4)

    def systems(self, split: str) -> int:
        return self.train_systems if split == "train" else self.eval_systems


def relax_with_emt(atoms, fmax: float, max_steps: int):
    """Relax a copy of ``atoms`` (its constraints kept) with EMT and BFGS.

    Returns ``(relaxed, steps)``; raises ``RuntimeError`` if it does not reach ``fmax``.
    """
    from ase.calculators.emt import EMT
    from ase.optimize import BFGS

    relaxed = atoms.copy()
    relaxed.calc = EMT()
    optimizer = BFGS(relaxed, logfile=None)
    converged = optimizer.run(fmax=fmax, steps=max_steps)
    if not converged:
        raise RuntimeError(
            f"EMT relaxation of {relaxed.get_chemical_formula()} did not reach fmax={fmax} "
            f"in {max_steps} steps"
        )
    return relaxed, optimizer.get_number_of_steps()


def relaxation_sample(initial, sid: int, fmax: float, max_steps: int, a2g):
    """One IS2RE/IS2RS record of an initial structure (see the module docstring)."""
    from ase.calculators.emt import EMT
    import torch

    initial = initial.copy()
    initial.calc = EMT()
    y_init = float(initial.get_potential_energy())
    relaxed, _ = relax_with_emt(initial, fmax, max_steps)
    data = a2g.convert(initial, sid=sid)
    # AtomsToGraphs wraps positions into the cell: move the wrapped ones by the relaxation's
    # displacement so that pos_relaxed - pos is the displacement, not a lattice vector.
    displacement = torch.tensor(relaxed.positions - initial.positions, dtype=data.pos.dtype)
    data.pos_relaxed = data.pos + displacement
    data.y_init = y_init
    data.y_relaxed = float(relaxed.get_potential_energy())
    return data


def _initial_structure(metals, adsorbates, rng: np.random.Generator):
    metal = metals[rng.integers(len(metals))]
    adsorbate = adsorbates[rng.integers(len(adsorbates))]
    atoms = make_slab_with_adsorbate(metal, adsorbate, rng)
    free = atoms.get_tags() > 0
    atoms.positions = atoms.positions + rng.normal(0.0, 0.05, size=(len(atoms), 3)) * free[:, None]
    return atoms


def make_relaxation_demo(
    out: Path, seed: int = 0, sizes: RelaxationSizes = RelaxationSizes(),
    overwrite: bool = False, progress: bool = True, task: str = "is2re",
) -> dict:
    """Write ``out/<split>/data.lmdb`` for every split and ``out/metadata.json``.

    Returns the metadata (split -> sample count, seed, sizes, relaxation settings).
    """
    from fairchem.core.preprocessing import AtomsToGraphs

    a2g = AtomsToGraphs(r_energy=False, r_forces=False, r_fixed=True, r_edges=False, r_pbc=True)
    rng = np.random.default_rng(seed)

    def system_record(metals, adsorbates, sid: int) -> list:
        initial = _initial_structure(metals, adsorbates, rng)
        return [relaxation_sample(initial, sid, sizes.fmax, sizes.max_steps, a2g)]

    metadata = {
        "task": task,
        "seed": seed,
        "train_systems": sizes.train_systems,
        "relaxation": {"calculator": "ase EMT", "optimizer": "ase BFGS",
                       "fmax_eV_per_A": sizes.fmax, "max_steps": sizes.max_steps},
        "labels": "y_init, y_relaxed: EMT total energies (eV); pos_relaxed (A)",
    }
    return write_demo_splits(out, sizes.systems, system_record, metadata, "EMT relaxations",
                             overwrite, progress)
