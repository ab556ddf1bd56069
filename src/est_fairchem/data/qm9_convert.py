"""Convert the QM9 release into fairchem LMDBs: ``train``, ``val``, ``test`` and metadata.

Each record is a torch-geometric ``Data`` with the keys and dtypes fairchem 1.10's
``AtomsToGraphs`` gives a non-periodic structure (``r_fixed``, ``r_pbc``):

- ``pos`` [n, 3] float32, Å; ``atomic_numbers`` [n] uint8; ``natoms`` (int);
- ``cell`` [1, 3, 3] float32 zeros and ``pbc`` [3] False: molecules are not periodic (configs
  use ``use_pbc: False``; the zero cell keeps the key every fairchem record has);
- ``fixed`` [n] int32 zeros (no atom is fixed); ``tags`` [n] int32 ones (what fairchem's ASE
  datasets give untagged structures, ``apply_one_tags``: GemNet-OC needs tagged atoms);
- ``sid`` = the release's molecule index (``gdb <index>``), ``fid`` = 0;
- the 12 targets as named floats :data:`TARGETS` (units in :data:`UNITS`) and ``y`` [1, 12]
  float32 in the same order.

Energies and orbital energies (homo, lumo, gap, zpve, U0, U, H, G) are converted from Hartree
to eV (1 Ha = :data:`HARTREE_TO_EV` eV, CODATA 2018); mu (D), alpha (a0^3), r2 (a0^2) and
Cv (cal/(mol K)) stay in the release's units. ``u0``, ``u``, ``h``, ``g`` are always total
energies; with ``subtract_atomrefs`` the records also hold ``u0_atomization``,
``u_atomization``, ``h_atomization``, ``g_atomization`` (total minus the release's atom
reference energies, :data:`ATOMREF_HARTREE`) and ``y`` holds these in columns 7-10.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from est_fairchem.data.lmdb_writer import write_lmdb
from est_fairchem.data.output_folder import atomic_output_dir
from est_fairchem.data.qm9_xyz import (
    ExclusionList,
    QM9FormatError,
    QM9Record,
    check_release_source,
    count_records,
    iter_qm9_records,
    read_exclusion_list,
)
from est_fairchem.data.qm9pack_csv import (
    QM9PACK,
    count_csv_records,
    csv_files,
    iter_csv_records,
    qm9pack_data_folder,
)
from est_fairchem.errors import InputError

HARTREE_TO_EV = 27.211386245988
TARGETS = ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "u0", "u", "h", "g", "cv")
FILE_FIELDS = dict(zip(TARGETS, ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve",
                                 "U0", "U", "H", "G", "Cv")))
HARTREE_TARGETS = frozenset({"homo", "lumo", "gap", "zpve", "u0", "u", "h", "g"})
UNITS = {name: "eV" for name in HARTREE_TARGETS} | {
    "mu": "D", "alpha": "a0^3", "r2": "a0^2", "cv": "cal/(mol K)"}
ATOMREF_TARGETS = ("u0", "u", "h", "g")
# The release's atomref table (figshare 10.6084/m9.figshare.1057643, "Atomref: Reference
# thermochemical energies of H, C, N, O, F atoms"; Ramakrishnan et al. 2014): B3LYP/6-31G(2df,p)
# energies of the free atoms in Hartree, keyed by atomic number.
ATOMREF_HARTREE: dict[str, dict[int, float]] = {
    "u0": {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730},
    "u": {1: -0.498857, 6: -37.845355, 7: -54.582445, 8: -75.063163, 9: -99.717314},
    "h": {1: -0.497912, 6: -37.844411, 7: -54.581501, 8: -75.062219, 9: -99.716370},
    "g": {1: -0.510927, 6: -37.861317, 7: -54.598897, 8: -75.079532, 9: -99.733544},
}
ATOMREF_SOURCE = ("atomref.txt of the QM9 release (figshare 10.6084/m9.figshare.1057643), "
                  "Ramakrishnan et al., Sci. Data 1, 140022 (2014)")

FULL_TRAIN, FULL_VAL, REFERENCE_MOLECULES = 110_000, 10_000, 130_831
SPLIT_RULE = (
    "more than 120,000 molecules: train 110,000, val 10,000, test the rest (the standard "
    "QM9 split; 130,831 molecules give 110,000/10,000/10,831). Fewer (demo data): train = "
    "floor(N*110000/130831), val = floor(N*10000/130831), each at least 1, test the rest "
    "(at least 1). Split members are np.random.default_rng(seed).permutation(N) of the "
    "molecules sorted by release index (after exclusion): the first train, the next val, "
    "the rest test (TorchMD-Net's and Equiformer's rule; their seed is 1)."
)
SPLITS = ("train", "val", "test")


def targets_in_ev(record: QM9Record) -> dict[str, float]:
    """The 12 targets of a record in the stored units (:data:`UNITS`), total energies."""
    return {
        name: record.properties[FILE_FIELDS[name]] * (HARTREE_TO_EV if name in HARTREE_TARGETS
                                                      else 1.0)
        for name in TARGETS
    }


def atomization_energies(record: QM9Record) -> dict[str, float]:
    """``<target>_atomization`` for U0, U, H, G in eV: total minus the sum of atom references."""
    result = {}
    for name in ATOMREF_TARGETS:
        reference = sum(ATOMREF_HARTREE[name][int(z)] for z in record.numbers)
        result[f"{name}_atomization"] = (
            (record.properties[FILE_FIELDS[name]] - reference) * HARTREE_TO_EV)
    return result


def split_sizes(num_molecules: int) -> tuple[int, int, int]:
    """(train, val, test) sizes for ``num_molecules`` by :data:`SPLIT_RULE`.

    Raises ``InputError`` for fewer than 3 molecules.
    """
    n = int(num_molecules)
    if n > FULL_TRAIN + FULL_VAL:
        return FULL_TRAIN, FULL_VAL, n - FULL_TRAIN - FULL_VAL
    if n < 3:
        raise InputError(f"a train/val/test split needs at least 3 molecules, got {n}")
    train = min(max(1, n * FULL_TRAIN // REFERENCE_MOLECULES), n - 2)
    val = min(max(1, n * FULL_VAL // REFERENCE_MOLECULES), n - train - 1)
    return train, val, n - train - val


def split_positions(num_molecules: int, seed: int) -> dict[str, np.ndarray]:
    """Positions (0-based, into the index-sorted molecule list) of each split, in permutation
    order: ``{"train": [n_train], "val": [n_val], "test": [n_test]}`` int64 arrays."""
    train, val, _ = split_sizes(num_molecules)
    perm = np.random.default_rng(seed).permutation(num_molecules)
    return {"train": perm[:train], "val": perm[train:train + val], "test": perm[train + val:]}


def record_to_data(record: QM9Record, subtract_atomrefs: bool = False):
    """The fairchem LMDB record (torch-geometric ``Data``) of one molecule; see module doc."""
    import torch
    from torch_geometric.data import Data

    n = len(record.numbers)
    values = targets_in_ev(record)
    y = [values[name] for name in TARGETS]
    data = Data(
        pos=torch.tensor(record.positions, dtype=torch.float32),
        atomic_numbers=torch.tensor(record.numbers, dtype=torch.uint8),
        natoms=n,
        cell=torch.zeros(1, 3, 3, dtype=torch.float32),
        pbc=torch.zeros(3, dtype=torch.bool),
        fixed=torch.zeros(n, dtype=torch.int32),
        tags=torch.ones(n, dtype=torch.int32),
        sid=record.index,
        fid=0,
    )
    for name, value in values.items():
        data[name] = float(value)
    if subtract_atomrefs:
        atomization = atomization_energies(record)
        for name, value in atomization.items():
            data[name] = float(value)
        for column, name in enumerate(TARGETS):
            if name in ATOMREF_TARGETS:
                y[column] = atomization[f"{name}_atomization"]
    data.y = torch.tensor([y], dtype=torch.float32)
    return data


def read_release(raw: Path, exclusions: ExclusionList | None = None,
                 progress: bool = True) -> tuple[list[QM9Record], int, int]:
    """Read every record of the release, drop the excluded ones, sort by molecule index.

    Returns ``(records, records_read, records_excluded)``. Raises :class:`QM9FormatError`
    if two records share an index.
    """
    from tqdm import tqdm

    excluded_set = exclusions.indices if exclusions is not None else frozenset()
    records: dict[int, QM9Record] = {}
    read = excluded = 0
    if csv_files(raw):
        source, total = iter_csv_records(raw), count_csv_records(raw)
    else:
        source, total = iter_qm9_records(raw), count_records(raw)
    for record in tqdm(source, total=total, desc="reading QM9", unit="mol",
                       disable=not progress):
        read += 1
        if record.index in records:
            raise QM9FormatError(f"{record.source}: molecule index {record.index} also in "
                                 f"{records[record.index].source}")
        if record.index in excluded_set:
            excluded += 1
            continue
        records[record.index] = record
    return [records[index] for index in sorted(records)], read, excluded


def prepare_qm9(raw: Path, out: Path, exclude: Path | None = None, seed: int = 1,
                subtract_atomrefs: bool = False, overwrite: bool = False,
                progress: bool = True) -> dict:
    """Write ``out/{train,val,test}/data.lmdb``, ``out/metadata.json`` and
    ``out/split_indices.npz`` (release indices of each split, in LMDB order).

    ``raw`` is a folder of ``dsgdb9nsd_*.xyz`` files, the release's tar archive, a folder of
    qm9pack's ``qm9_part*.csv`` files or ``"qm9pack"`` (the installed package's CSV files,
    :mod:`est_fairchem.data.qm9pack_csv`); ``exclude`` the release's ``uncharacterized.txt``. Writes atomically (nothing is left behind on
    failure, Ctrl-C or SIGTERM) and refuses, before any work, an ``out`` that is a file, that
    is or contains ``raw`` or ``exclude``, or that is non-empty without ``overwrite``
    (:func:`est_fairchem.data.output_folder.check_output_folder`). Returns the metadata.
    """
    from tqdm import tqdm

    given = str(raw)
    raw, out = release_path(raw), Path(out)
    if not csv_files(raw):
        check_release_source(raw)
    inputs = (raw, exclude)
    with atomic_output_dir(out, overwrite=overwrite, protect=inputs,
                           marker="metadata.json") as tmp:  # checks out before any work
        exclusions = read_exclusion_list(exclude) if exclude is not None else None
        records, read, excluded = read_release(raw, exclusions, progress)
        positions = split_positions(len(records), seed)
        counts: dict[str, int] = {}
        for split in SPLITS:
            (tmp / split).mkdir()
            chosen = positions[split]
            samples = (record_to_data(records[i], subtract_atomrefs) for i in chosen)
            counts[split] = write_lmdb(
                tmp / split / "data.lmdb",
                tqdm(samples, total=len(chosen), desc=f"writing {split}", unit="mol",
                     disable=not progress))
        np.savez(tmp / "split_indices.npz",
                 **{split: np.array([records[i].index for i in positions[split]], np.int64)
                    for split in SPLITS})
        metadata = _metadata(source_label(given, raw), exclusions, read, excluded,
                             len(records), seed, subtract_atomrefs, counts)
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def release_path(raw: Path | str) -> Path:
    """``raw`` as a path: ``qm9pack`` names the installed package's CSV folder."""
    return qm9pack_data_folder() if str(raw) == QM9PACK else Path(raw)


def source_label(given: str, raw: Path) -> str:
    """What ``metadata.json`` records as the source: the path, or qm9pack's version and path."""
    if given != QM9PACK:
        return given
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"qm9pack {version(QM9PACK)} ({raw})"
    except PackageNotFoundError:
        return f"qm9pack ({raw})"


def _metadata(raw: str, exclusions: ExclusionList | None, read: int, excluded: int,
              molecules: int, seed: int, subtract_atomrefs: bool,
              counts: dict[str, int]) -> dict:
    exclusion = None
    if exclusions is not None:
        exclusion = {
            "file": exclusions.path,
            "indices_listed": len(exclusions.indices),
            "data_lines": exclusions.data_lines,
            "skipped_lines": exclusions.skipped_lines,
            "excluded": excluded,
            "listed_but_absent": len(exclusions.indices) - excluded,
        }
    y_columns = [f"{name}_atomization" if subtract_atomrefs and name in ATOMREF_TARGETS
                 else name for name in TARGETS]
    return {
        "task": "qm9",
        "source": raw,
        "records_read": read,
        "exclusion": exclusion,
        "molecules": molecules,
        "seed": seed,
        "split_rule": SPLIT_RULE,
        "samples": counts,
        "targets": list(TARGETS),
        "units": {name: UNITS[name] for name in TARGETS},
        "y": {"shape": [1, len(TARGETS)], "dtype": "float32", "columns": y_columns},
        "subtract_atomrefs": subtract_atomrefs,
        "hartree_to_ev": HARTREE_TO_EV,
        "atomrefs_hartree": {name: {str(z): v for z, v in table.items()}
                             for name, table in ATOMREF_HARTREE.items()},
        "atomref_source": ATOMREF_SOURCE,
        "record": ("pos [n,3] float32 A; atomic_numbers [n] uint8; natoms; cell [1,3,3] "
                   "zeros and pbc [3] False (not periodic); fixed [n] int32 zeros; tags [n] "
                   "int32 ones; "
                   "sid = release index; fid = 0; named float targets; y [1,12]"),
        "split_indices": "split_indices.npz (release indices of each split, LMDB order)",
    }
