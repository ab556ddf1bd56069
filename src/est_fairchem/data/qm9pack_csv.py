"""Read QM9 from the CSV files of the PyPI package ``qm9pack`` (the whole release, offline).

``qm9pack`` ships ``data/qm9_part1.csv`` ... ``qm9_part3.csv``: one row per characterized
molecule of the release (130,831; the 3,054 uncharacterized ones are absent), with the
release's index, elements, coordinates (Å), Mulliken charges, harmonic frequencies, the 15
properties in the release's units (GHz, D, a0^3, Hartree, a0^2, cal/(mol K)), one SMILES and
one InChI. Each row becomes the :class:`~est_fairchem.data.qm9_xyz.QM9Record` the release's
``dsgdb9nsd_<index>.xyz`` file gives, so ``prepare-qm9 --raw qm9pack`` writes the same LMDBs
as the release path (same keys, units, conversions, atom references and seeded split). The
package is found without importing it (its ``__init__`` needs ``pkg_resources``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

import numpy as np

from est_fairchem.data.qm9_xyz import (
    ELEMENTS,
    PROPERTY_NAMES,
    QM9FormatError,
    QM9Record,
    parse_number,
)
from est_fairchem.errors import InputError

QM9PACK = "qm9pack"
CSV_PATTERN = "qm9_part*.csv"
PROPERTY_COLUMNS = dict(zip(PROPERTY_NAMES, (
    "RotA_GHz", "RotB_GHz", "RotC_GHz", "Dipole_debye", "Polarizability_bohr3", "HOMO_au",
    "LUMO_au", "HOMO_LUMO_gap_au", "R2_bohr2", "ZPVE_au", "InternalEnergy_0K_au",
    "InternalEnergy_298K_au", "Enthalphy_298K_au", "GibbsFreeEnergy_298K_au",
    "Heatcapacity_Cv_cal_mol_K")))
COLUMNS = ("Index", "SMILES", "InChi", "N_atoms", "Elements", "XYZ_Ang", "Mulliken_pop",
           "Harmonic_Freq_cmi", *PROPERTY_COLUMNS.values())


def qm9pack_data_folder() -> Path:
    """The installed ``qm9pack`` package's ``data`` folder; ``InputError`` if not installed."""
    import importlib.util

    spec = importlib.util.find_spec(QM9PACK)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("--raw qm9pack: the qm9pack package is not installed "
                         "(pip install 'est-fairchem[qm9pack]')")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not csv_files(folder):
        raise InputError(f"--raw qm9pack: no {CSV_PATTERN} files in {folder}")
    return folder


def csv_files(folder: Path) -> list[Path]:
    """The ``qm9_part*.csv`` files of ``folder``, in part order."""
    return sorted(Path(folder).glob(CSV_PATTERN)) if Path(folder).is_dir() else []


def count_csv_records(folder: Path) -> int:
    """Rows of the CSV files (one per molecule; quoted fields hold no line breaks)."""
    total = 0
    for path in csv_files(folder):
        with open(path, "rb") as handle:
            total += sum(1 for _ in handle) - 1
    return total


def _numbers(text: str, what: str) -> np.ndarray:
    """The numbers of a bracketed (possibly nested) list such as ``[[0.5,0.,1.],...]``, flat
    float64 (``0.`` style tokens allowed, which JSON refuses)."""
    tokens = text.replace("[", " ").replace("]", " ").replace(",", " ").split()
    try:
        return np.array([parse_number(t) for t in tokens], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{what}: expected a bracketed list of numbers, found "
                         f"{text[:60]!r}") from None


def row_to_record(row: dict[str, str], source: str) -> QM9Record:
    """The release record of one CSV row; ``QM9FormatError`` naming ``source`` and the column."""
    absent = [column for column in COLUMNS if row.get(column) is None]
    if absent:  # csv.DictReader fills the columns a short row lacks with None
        raise QM9FormatError(
            f"{source}: the row ends before column {absent[0]} ({len(absent)} of {len(COLUMNS)} "
            "columns missing): a truncated file? Download or copy it again")
    try:
        index = int(row["Index"])
        symbols = [s.strip().strip("'\"") for s in row["Elements"].strip("[]").split(",")]
        unknown = sorted(set(symbols) - set(ELEMENTS))
        if unknown:
            raise ValueError(f"Elements: expected symbols among {', '.join(ELEMENTS)}, "
                             f"found {unknown}")
        positions = _numbers(row["XYZ_Ang"], "XYZ_Ang")
        charges = _numbers(row["Mulliken_pop"], "Mulliken_pop")
        if positions.size != 3 * len(symbols) or charges.size != len(symbols):
            raise ValueError(f"XYZ_Ang / Mulliken_pop: expected {len(symbols)} atoms as in "
                             f"Elements, found {positions.size} coordinates / {charges.size} "
                             "charges")
        positions = positions.reshape(len(symbols), 3)
        if int(row["N_atoms"]) != len(symbols):
            raise ValueError(f"N_atoms: {row['N_atoms']} but Elements lists {len(symbols)}")
        frequencies = _numbers(row["Harmonic_Freq_cmi"], "Harmonic_Freq_cmi")
        properties = {}
        for name, column in PROPERTY_COLUMNS.items():
            try:
                properties[name] = parse_number(row[column])
            except ValueError:
                raise ValueError(f"{column}: expected a number, found {row[column]!r}") from None
    except (ValueError, TypeError) as error:
        raise QM9FormatError(f"{source}: {error}") from None
    return QM9Record(
        index=index, numbers=np.array([ELEMENTS[s] for s in symbols], dtype=np.int64),
        positions=positions, charges=charges, properties=properties, frequencies=frequencies,
        smiles=(row["SMILES"],), inchi=(row["InChi"],), source=source,
    )


def iter_csv_records(folder: Path) -> Iterator[QM9Record]:
    """Yield the record of every row of ``folder``'s ``qm9_part*.csv`` files, in file order.

    Raises :class:`QM9FormatError` naming the file, the line and the column for a bad row or
    a file without the expected columns.
    """
    csv.field_size_limit(1 << 24)
    for path in csv_files(folder):
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise QM9FormatError(f"{path}, line 1: expected qm9pack's columns; missing "
                                     f"{missing}")
            for row in reader:
                yield row_to_record(row, f"{path}, line {reader.line_num}")
