"""Small OC20-style S2EF datasets of slab + adsorbate systems labelled by ASE's EMT.

Splits mirror OC20: ``train``, ``val`` and the four test splits ``test_id``,
``test_ood_ads`` (adsorbates unseen in training), ``test_ood_cat`` (metals unseen in training)
and ``test_ood_both``. Each sample is a torch-geometric ``Data`` as fairchem's
``AtomsToGraphs`` makes it (``pos``, ``cell`` [1, 3, 3], ``atomic_numbers``, ``natoms``,
``tags`` 0/1/2 = subsurface/surface/adsorbate, ``fixed`` = subsurface atoms) with ``energy``
(eV, EMT total energy), ``forces`` (eV/Å), ``sid`` and ``fid``, and no graph (models build it
on the fly). Deterministic for a given seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from est_fairchem.data.lmdb_writer import atomic_output_dir, write_lmdb

TRAIN_METALS = ("Cu", "Ag", "Pt", "Ni")
OOD_METALS = ("Au", "Pd", "Al")
TRAIN_ADSORBATES = ("H", "O", "N")
OOD_ADSORBATES = ("C", "CO", "OH")
S2EF_SPLITS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "train": (TRAIN_METALS, TRAIN_ADSORBATES),
    "val": (TRAIN_METALS, TRAIN_ADSORBATES),
    "test_id": (TRAIN_METALS, TRAIN_ADSORBATES),
    "test_ood_ads": (TRAIN_METALS, OOD_ADSORBATES),
    "test_ood_cat": (OOD_METALS, TRAIN_ADSORBATES),
    "test_ood_both": (OOD_METALS, OOD_ADSORBATES),
}
TEST_SPLITS = ("test_id", "test_ood_ads", "test_ood_cat", "test_ood_both")
_SITES = ("ontop", "bridge", "fcc", "hcp")


@dataclass(frozen=True)
class DemoSizes:
    """Systems per split and rattled frames per system."""

    train_systems: int = 48
    frames_per_system: int = 4

    @property
    def eval_systems(self) -> int:
        return max(2, self.train_systems // 4)

    def systems(self, split: str) -> int:
        return self.train_systems if split == "train" else self.eval_systems


def make_slab_with_adsorbate(
    metal: str, adsorbate: str, rng: np.random.Generator,
    slab_size: tuple[int, int, int] = (2, 2, 3), site: str | None = None,
    height: float | None = None,
):
    """A periodic fcc(111) slab (``slab_size`` cells, default 2x2x3) with one adsorbate;
    OC20 tags and fixed subsurface. ``site`` (one of ontop, bridge, fcc, hcp) and ``height``
    (A above the surface) are drawn from ``rng`` unless given.

    Returns an ``ase.Atoms`` with tags 0 (subsurface), 1 (surface), 2 (adsorbate) and a
    ``FixAtoms`` constraint on the subsurface atoms.
    """
    from ase.build import add_adsorbate, fcc111, molecule
    from ase.constraints import FixAtoms

    slab = fcc111(metal, size=slab_size, vacuum=7.0)
    num_slab_atoms = len(slab)
    layer = slab.get_tags()  # ASE: 1 = top layer, increasing downwards
    slab.set_tags(np.where(layer == 1, 1, 0))
    ads = adsorbate
    if len(adsorbate) > 1:
        ads = molecule(adsorbate)
        if ads.positions[1:, 2].mean() < ads.positions[0, 2]:
            ads.rotate(180, "x")  # binding atom (the first) down, the rest pointing away
    drawn_site, drawn_height = _SITES[rng.integers(len(_SITES))], float(rng.uniform(1.8, 2.2))
    site = drawn_site if site is None else site
    height = drawn_height if height is None else height
    add_adsorbate(slab, ads, height, position=site)
    n_ads = len(slab) - num_slab_atoms
    tags = slab.get_tags()
    tags[-n_ads:] = 2
    slab.set_tags(tags)
    slab.set_constraint(FixAtoms(mask=tags == 0))
    slab.pbc = True
    return slab


def _frames(atoms, sid: int, frames: int, rng: np.random.Generator, a2g) -> list:
    from ase.calculators.emt import EMT

    free = atoms.get_tags() > 0
    samples = []
    for fid in range(frames):
        frame = atoms.copy()
        displacement = rng.normal(0.0, 0.05, size=(len(frame), 3)) * free[:, None]
        frame.positions = frame.positions + displacement
        frame.calc = EMT()
        data = a2g.convert(frame, sid=sid)
        data.fid = fid
        samples.append(data)
    return samples


def write_demo_splits(
    out: Path, systems: Callable[[str], int], make_samples: Callable[[tuple, tuple, int], list],
    metadata: dict, desc: str, overwrite: bool = False, progress: bool = True,
) -> dict:
    """Write ``out/<split>/data.lmdb`` for every OC20-style split and ``out/metadata.json``,
    atomically.

    Args:
        systems: number of systems of a split.
        make_samples: ``(metals, adsorbates, sid) -> samples`` of one system of a split with
            these element sets (the system id ``sid`` counts across splits).
        metadata: written with ``samples`` (split -> sample count) added; returned.
    """
    from tqdm import tqdm

    counts: dict[str, int] = {}
    sid = 0
    total = sum(systems(split) for split in S2EF_SPLITS)
    with atomic_output_dir(Path(out), overwrite=overwrite, marker="metadata.json") as tmp, tqdm(
        total=total, desc=desc, unit="system", disable=not progress
    ) as bar:
        for split, (metals, adsorbates) in S2EF_SPLITS.items():
            samples = []
            for _ in range(systems(split)):
                samples += make_samples(metals, adsorbates, sid)
                sid += 1
                bar.update(1)
            (tmp / split).mkdir()
            counts[split] = write_lmdb(tmp / split / "data.lmdb", samples)
        metadata = {**metadata, "samples": counts}
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def make_s2ef_demo(
    out: Path, seed: int = 0, sizes: DemoSizes = DemoSizes(), overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write ``out/<split>/data.lmdb`` for every S2EF split and ``out/metadata.json``.

    Returns the metadata (split -> sample count, seed, sizes, element sets).
    """
    from fairchem.core.preprocessing import AtomsToGraphs

    a2g = AtomsToGraphs(r_energy=True, r_forces=True, r_fixed=True, r_edges=False, r_pbc=True)
    rng = np.random.default_rng(seed)

    def system_frames(metals, adsorbates, sid: int) -> list:
        metal = metals[rng.integers(len(metals))]
        adsorbate = adsorbates[rng.integers(len(adsorbates))]
        atoms = make_slab_with_adsorbate(metal, adsorbate, rng)
        return _frames(atoms, sid, sizes.frames_per_system, rng, a2g)

    metadata = {
        "task": "s2ef",
        "seed": seed,
        "train_systems": sizes.train_systems,
        "frames_per_system": sizes.frames_per_system,
        "metals": {"id": list(TRAIN_METALS), "ood": list(OOD_METALS)},
        "adsorbates": {"id": list(TRAIN_ADSORBATES), "ood": list(OOD_ADSORBATES)},
        "labels": "ASE EMT total energy (eV) and forces (eV/A)",
    }
    return write_demo_splits(out, sizes.systems, system_frames, metadata, "EMT slabs",
                             overwrite, progress)


def as_oc22_record(data):
    """An S2EF sample with OC22's record names (fairchem's ``oc22_lmdb`` reads them): the
    total energy as ``y``, forces as ``force``, and ``oc22 = 1``."""
    data.y, data.force, data.oc22 = data.energy, data.forces, 1
    del data.energy, data.forces
    return data


def make_oc22_demo(
    out: Path, seed: int = 0, sizes: DemoSizes = DemoSizes(train_systems=16, frames_per_system=2),
    overwrite: bool = False, progress: bool = True,
) -> dict:
    """The S2EF demo's systems in OC22's record layout (:func:`as_oc22_record`), for the
    ``oc22_lmdb`` configs: ``out/<split>/data.lmdb`` and ``out/metadata.json``. EMT total
    energies stand in for OC22's total DFT energies."""
    from fairchem.core.preprocessing import AtomsToGraphs

    a2g = AtomsToGraphs(r_energy=True, r_forces=True, r_fixed=True, r_edges=False, r_pbc=True)
    rng = np.random.default_rng(seed)

    def system_frames(metals, adsorbates, sid: int) -> list:
        atoms = make_slab_with_adsorbate(metals[rng.integers(len(metals))],
                                         adsorbates[rng.integers(len(adsorbates))], rng)
        return [as_oc22_record(d) for d in _frames(atoms, sid, sizes.frames_per_system, rng, a2g)]

    metadata = {"task": "oc22", "seed": seed, "train_systems": sizes.train_systems,
                "frames_per_system": sizes.frames_per_system,
                "labels": "ASE EMT total energy as y (eV) and forces as force (eV/A), oc22 = 1"}
    return write_demo_splits(out, sizes.systems, system_frames, metadata, "EMT slabs (OC22)",
                             overwrite, progress)
