"""Small ASE databases of strained bulk metals labelled by ASE's EMT, with stress.

The own-data workflow (``docs/guide/own_data.md``) reads a user's DFT data as an ASE database
through fairchem's ``ase_db`` format (``AseDBDataset``); these made databases stand in for one
where a test or a demo needs stress labels (``oxides.db``, the real DFT data, has none).

``out/{train,val,test}.db``: one row per structure, an fcc bulk (``cubic=True``, 4 atoms, or
the 2x1x1 supercell, 8 atoms) of one metal of :data:`BULK_METALS`, a random symmetric strain
(each component uniform in +-3 %), positions rattled by 0.05 Å (normal), periodic on all axes;
EMT's energy (eV), forces (eV/Å) and stress (eV/Å^3, ASE's sign: positive is tensile) stored
with a ``SinglePointCalculator``, so ``row.toatoms()`` gives them back. ``metadata.json`` holds
the sizes. Deterministic for a given seed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from est_fairchem.data.output_folder import atomic_output_dir

BULK_METALS = ("Cu", "Ag", "Ni", "Pd", "Pt", "Al", "Au")
BULK_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class BulkSizes:
    """Structures per split."""

    train: int = 48
    val: int = 12
    test: int = 12

    def of(self, split: str) -> int:
        return getattr(self, split)


def strained_bulk(metal: str, rng: np.random.Generator, repeat: tuple[int, int, int] = (1, 1, 1),
                  max_strain: float = 0.03, rattle: float = 0.05):
    """An fcc bulk of ``metal`` (cubic cell times ``repeat``), strained and rattled, with EMT
    attached."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk(metal, "fcc", cubic=True).repeat(repeat)
    strain = rng.uniform(-max_strain, max_strain, size=(3, 3))
    strain = (strain + strain.T) / 2
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    atoms.positions += rng.normal(0.0, rattle, size=atoms.positions.shape)
    atoms.calc = EMT()
    return atoms


def labelled(atoms):
    """``atoms`` with EMT's energy, forces and stress frozen in a SinglePointCalculator."""
    from ase.calculators.singlepoint import SinglePointCalculator

    labels = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
              "stress": atoms.get_stress(voigt=True)}
    frozen = atoms.copy()
    frozen.calc = SinglePointCalculator(frozen, **labels)
    return frozen


def write_split_databases(out: Path, rows: dict[str, int], write_row: Callable[[Any], None],
                          metadata: dict, overwrite: bool = False) -> dict:
    """Write ``out/<split>.db`` with ``rows[split]`` rows each (``write_row(db)`` writes one,
    splits and rows in order) and ``out/metadata.json`` (``metadata`` plus the row counts),
    atomically; return the metadata."""
    from ase.db import connect

    with atomic_output_dir(Path(out), overwrite=overwrite, marker="metadata.json") as tmp:
        for split, count in rows.items():
            with connect(tmp / f"{split}.db") as db:
                for _ in range(count):
                    write_row(db)
        metadata = {**metadata, "rows": dict(rows)}
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def make_bulk_demo(out: Path, seed: int = 0, sizes: BulkSizes = BulkSizes(),
                   overwrite: bool = False) -> dict:
    """Write ``out/{train,val,test}.db`` and ``out/metadata.json`` (atomically); return the
    metadata (rows per split, seed, metals)."""
    rng = np.random.default_rng(seed)

    def write_row(db) -> None:
        metal = BULK_METALS[rng.integers(len(BULK_METALS))]
        repeat = (1, 1, 1) if rng.random() < 0.5 else (2, 1, 1)
        db.write(labelled(strained_bulk(metal, rng, repeat)), metal=metal)

    return write_split_databases(
        out, {split: sizes.of(split) for split in BULK_SPLITS}, write_row,
        {"task": "bulk", "seed": seed, "sizes": asdict(sizes), "metals": list(BULK_METALS),
         "labels": "ASE EMT energy (eV), forces (eV/A), stress (eV/A^3, Voigt)"}, overwrite)
