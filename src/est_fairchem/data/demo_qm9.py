"""A small stand-in for the QM9 release: ``dsgdb9nsd_*.xyz`` files and ``uncharacterized.txt``
in the release's exact layout, made from ASE's G2 molecules, for ``est-fairchem prepare-qm9``.

Molecules are those of ``ase.collections.g2`` with 3 or more atoms whose elements ASE's EMT
calculator handles (of QM9's H, C, N, O, F, EMT has H, C, N, O): 72 molecules, radicals
included, randomly rotated and perturbed (seeded). The properties are **stand-ins**, not
quantum chemistry, chosen so that each is a deterministic, learnable function of the geometry:

- U0 = sum of the release's U0 atom references + E_EMT (so the U0 atomization energy is the
  EMT energy); U = sum of U atom references + E_EMT + 0.0005 Ha per atom; H = U + kT
  (298.15 K); G = H - 0.001 Ha per atom - 0.012 Ha (all in Hartree, as in the release);
- Mulliken charges q_i = 0.1 (chi_i - mean chi) from Pauling electronegativities; mu = |sum
  q_i (r_i - r_com)| in D; r2 = sum |r_i - r_com|^2 in a0^2; alpha = sum of free-atom
  polarizabilities + 0.05 r2 / n (a0^3);
- homo = -(0.2 + 0.1 max|q|), lumo = 0.02 + 0.2 / (1 + sqrt(r2 / n)), gap = lumo - homo (Ha);
- harmonic frequencies 3000 / d^1.5 cm^-1 over the sorted interatomic distances d (Å), 3n-6
  of them; zpve = half their sum in Hartree; Cv = 2.981 + 0.7 n;
- A, B, C: the true rotational constants (GHz) of the perturbed geometry;
- SMILES and InChI lines hold the Hill formula (``CH4``, ``InChI=1S/CH4``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from est_fairchem.data.lmdb_writer import atomic_output_dir
from est_fairchem.data.qm9_convert import ATOMREF_HARTREE, HARTREE_TO_EV
from est_fairchem.errors import InputError

BOHR_IN_ANGSTROM = 0.529177210903
E_ANGSTROM_IN_DEBYE = 4.803204712570263  # 1 e·Å in D
KT_298_HARTREE = 9.4418e-4
CM1_IN_HARTREE = 4.556335252912e-6
ROTATIONAL_GHZ_AMU_A2 = 505.379  # h / (8 pi^2) in GHz·amu·Å^2
QM9_ELEMENTS = ("H", "C", "N", "O", "F")
_PAULING = {"H": 2.20, "C": 2.55, "N": 3.04, "O": 3.44, "F": 3.98}
_ATOM_POLARIZABILITY = {"H": 4.5, "C": 11.3, "N": 7.4, "O": 5.3, "F": 3.7}  # a0^3


@lru_cache(maxsize=1)
def demo_molecule_names() -> tuple[str, ...]:
    """G2 molecule names with 3+ atoms, only QM9 elements EMT supports, at least one of C, N, O."""
    from ase.calculators.emt import parameters
    from ase.collections import g2

    allowed = set(QM9_ELEMENTS) & set(parameters)
    names = []
    for name in g2.names:
        symbols = set(g2[name].get_chemical_symbols())
        if len(g2[name]) >= 3 and symbols <= allowed and symbols & {"C", "N", "O"}:
            names.append(name)
    return tuple(sorted(names))


def release_number(value: float) -> str:
    """A number as the release writes it, shortest form: ``0.``, ``87.``, ``-40.47893``,
    ``1.5*^-6`` (round the value first to the digits wanted)."""
    value = float(value)
    if value == 0:
        return "0."
    if abs(value) < 1e-4:
        mantissa, exponent = f"{value:.4e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}*^{int(exponent)}"
    text = repr(value)
    return text[:-1] if text.endswith(".0") else text


def _coordinate(value: float) -> str:
    if 0 < abs(value) < 1e-4:
        text = release_number(value)
        return text if value < 0 else " " + text
    return f"{value: .10f}"


def stand_in_properties(atoms, emt_energy_ev: float) -> tuple[dict[str, float], np.ndarray,
                                                              np.ndarray]:
    """(properties in release units, Mulliken charges [n], frequencies [3n-6]) of ``atoms``.

    See the module docstring for the formulas; values are rounded as the release writes them.
    """
    symbols = atoms.get_chemical_symbols()
    numbers = atoms.get_atomic_numbers()
    n = len(atoms)
    chi = np.array([_PAULING[s] for s in symbols])
    charges = np.round(0.1 * (chi - chi.mean()), 6)
    centred = atoms.positions - atoms.get_center_of_mass()
    r2 = float((centred ** 2).sum()) / BOHR_IN_ANGSTROM ** 2
    mu = float(np.linalg.norm(charges @ centred)) * E_ANGSTROM_IN_DEBYE
    homo = -(0.2 + 0.1 * float(np.abs(charges).max()))
    lumo = 0.02 + 0.2 / (1.0 + np.sqrt(r2 / n))
    homo, lumo = round(homo, 4), round(float(lumo), 4)
    distances = np.sort(atoms.get_all_distances()[np.triu_indices(n, 1)])
    frequencies = np.round(np.sort(np.resize(3000.0 / distances ** 1.5, 3 * n - 6)), 4)
    u0 = sum(ATOMREF_HARTREE["u0"][z] for z in numbers) + emt_energy_ev / HARTREE_TO_EV
    u = sum(ATOMREF_HARTREE["u"][z] for z in numbers) + emt_energy_ev / HARTREE_TO_EV + 5e-4 * n
    h = u + KT_298_HARTREE
    inertia = np.sort(atoms.get_moments_of_inertia())
    rotational = [float(f"{ROTATIONAL_GHZ_AMU_A2 / i:.7g}") if i > 1e-8 else 0.0
                  for i in inertia]
    properties = {
        "A": rotational[0], "B": rotational[1], "C": rotational[2],
        "mu": round(mu, 4),
        "alpha": round(sum(_ATOM_POLARIZABILITY[s] for s in symbols) + 0.05 * r2 / n, 2),
        "homo": homo, "lumo": lumo, "gap": round(lumo - homo, 4),
        "r2": round(r2, 4),
        "zpve": round(0.5 * float(frequencies.sum()) * CM1_IN_HARTREE, 6),
        "U0": round(u0, 6), "U": round(u, 6), "H": round(h, 6),
        "G": round(h - 1e-3 * n - 0.012, 6),
        "Cv": round(2.981 + 0.7 * n, 3),
    }
    return properties, charges, frequencies


def format_qm9_xyz(index: int, symbols: list[str], positions: np.ndarray, charges: np.ndarray,
                   properties: dict[str, float], frequencies: np.ndarray,
                   smiles: tuple[str, str], inchi: tuple[str, str]) -> str:
    """One record in the release's layout (n + 5 tab-separated lines, see ``qm9_xyz``)."""
    from est_fairchem.data.qm9_xyz import PROPERTY_NAMES

    lines = [str(len(symbols)),
             f"gdb {index}\t" + "".join(f"{release_number(properties[k])}\t"
                                         for k in PROPERTY_NAMES)]
    for symbol, (x, y, z), q in zip(symbols, positions, charges):
        lines.append("\t".join([symbol, _coordinate(x), _coordinate(y), _coordinate(z),
                                f"{q: .6f}"]))
    lines.append("\t".join(release_number(f) for f in frequencies))
    lines.append("\t".join(smiles) + "\t")
    lines.append("\t".join(inchi))
    return "\n".join(lines) + "\n"


def format_uncharacterized(entries: list[tuple[int, str]]) -> str:
    """An exclusion list in the layout of the release's ``uncharacterized.txt``: blank lines,
    a paragraph, ``=`` rules around a ``#   Index ...`` header, data lines, a closing rule."""
    rule = "=" * 158
    lines = ["", "", "", "",
             "Demo stand-in for the QM9 release's list of molecules whose B3LYP geometry does not",
             "match their GDB-17 SMILES. Columns: molecule index, GDB-17 SMILES, SMILES of the",
             "B3LYP geometry, SMILES of the Corina geometry, and D_IJ (L1 norm of the Coulomb",
             "matrix difference, au). Here the SMILES are Hill formulas and D_IJ is made up.",
             "", rule,
             f"#   Index{'GDB17 SMILES':>40}{'SMILES for B3LYP XYZ':>45}"
             f"{'SMILES for Corina generated XYZ':>45}{'D_IJ':>16}",
             rule]
    for index, formula in entries:
        lines.append(f"{index:>8}{formula:>40}{formula:>45}{formula:>45}{1.234567 * index:>16.6f}")
    lines.append(rule)
    return "\n".join(lines) + "\n"


def make_qm9_demo(out: Path, molecules: int = 200, seed: int = 0,
                  uncharacterized: int | None = None, overwrite: bool = False,
                  progress: bool = True) -> dict:
    """Write ``out/dsgdb9nsd_000001.xyz`` ... and ``out/uncharacterized.txt`` (listing
    ``uncharacterized`` of them, default 2), plus
    ``out/demo_metadata.json``; atomically, refusing a non-empty ``out`` unless ``overwrite``.
    Needs ``uncharacterized + 4`` molecules at least (``InputError`` otherwise).
    Returns the metadata."""
    from ase.calculators.emt import EMT
    from ase.collections import g2
    from tqdm import tqdm

    if uncharacterized is None:
        uncharacterized = 2
    if uncharacterized < 0:
        raise InputError(f"uncharacterized={uncharacterized}: expected at least 0")
    if molecules < uncharacterized + 4:
        raise InputError(
            f"--systems {molecules}: the QM9 demo needs at least {uncharacterized + 4} molecules "
            f"({uncharacterized} are listed as uncharacterized, and the split of the rest must "
            "leave 2 for training: fairchem's normalizer fitted on 1 molecule has a spread of 0)")
    rng = np.random.default_rng(seed)
    names = demo_molecule_names()
    order: list[str] = []
    while len(order) < molecules:
        order += [names[i] for i in rng.permutation(len(names))]
    formulas: dict[int, str] = {}
    with atomic_output_dir(Path(out), overwrite=overwrite,
                           marker="demo_metadata.json") as tmp:
        for index, name in enumerate(tqdm(order[:molecules], desc="QM9 demo", unit="mol",
                                          disable=not progress), start=1):
            atoms = g2[name].copy()
            atoms.rotate(float(rng.uniform(0, 360)), rng.normal(size=3), center="COM")
            atoms.positions += rng.normal(0.0, 0.03, size=atoms.positions.shape)
            atoms.positions -= atoms.get_center_of_mass()
            if index % 3 == 0:  # a tiny coordinate, written in the release's 1.5*^-6 style
                tiny = float(f"{rng.uniform(1e-6, 9e-6):.4e}")
                atoms.positions[:, 2] -= atoms.positions[0, 2] - tiny
            atoms.positions = np.round(atoms.positions, 10)
            atoms.calc = EMT()
            energy = float(atoms.get_potential_energy())
            properties, charges, frequencies = stand_in_properties(atoms, energy)
            formula = atoms.get_chemical_formula(mode="hill")
            formulas[index] = formula
            text = format_qm9_xyz(index, atoms.get_chemical_symbols(), atoms.positions, charges,
                                  properties, frequencies, (formula, formula),
                                  (f"InChI=1S/{formula}",) * 2)
            (tmp / f"dsgdb9nsd_{index:06d}.xyz").write_text(text)
        listed = sorted(int(i) for i in rng.choice(np.arange(1, molecules + 1),
                                                   size=uncharacterized, replace=False))
        (tmp / "uncharacterized.txt").write_text(
            format_uncharacterized([(i, formulas[i]) for i in listed]))
        metadata = {
            "task": "qm9 (raw release layout, demo)",
            "seed": seed,
            "molecules": molecules,
            "uncharacterized": listed,
            "source": "ase.collections.g2 molecules of H, C, N, O (EMT's QM9 elements), "
                      "rotated and perturbed (0.03 A)",
            "properties": "stand-ins, see est_fairchem.data.demo_qm9; U0 atomization = EMT "
                          "energy",
        }
        (tmp / "demo_metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata
