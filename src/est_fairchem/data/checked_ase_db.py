"""fairchem's ``AseDBDataset`` (the ``ase_db`` format: ASE ``.db`` / ``.aselmdb`` files) with
checks that name the file, the row and the key.

Configs name it by its dotted path (``format`` of ``dataset.train``, inherited by the other
splits)::

    dataset:
      train:
        format: est_fairchem.data.CheckedAseDBDataset
        src: my_data/train.db
        a2g_args: {r_energy: True, r_forces: True, r_stress: True}

Before training: a missing ``src``, a file that is not an ASE database and a ``select_args``
selection that matches no row fail with one line naming the path (and the selection); the
first and last rows are read, so a database without the labels ``a2g_args`` asks for fails
at once. Any later row without them fails when it is read, naming the file, its row id and
the missing key (fairchem otherwise stops inside ASE with "no calculator" or a property
error). Valid data are read exactly as by ``AseDBDataset``.
"""

from __future__ import annotations

import bisect
import glob
from pathlib import Path

from fairchem.core.datasets.ase_datasets import AseDBDataset

from est_fairchem.errors import InputError

# a2g_args flag -> the label it reads from each row
LABELS = {"r_energy": "energy", "r_forces": "forces", "r_stress": "stress"}


def _sources(src) -> list[str]:
    return [str(src)] if isinstance(src, (str, Path)) else [str(path) for path in src or ()]


def check_sources(src) -> None:
    """Raise :class:`InputError` for a ``src`` path that does not exist (globs must match)."""
    if not _sources(src):
        raise InputError("dataset src is empty: name an ASE database (.db, .aselmdb) or a "
                         "folder of them")
    for path in _sources(src):
        if not Path(path).exists() and not glob.glob(path):
            raise InputError(f"{path}: no such file or folder (a dataset src)")


class CheckedAseDBDataset(AseDBDataset):
    """``AseDBDataset`` that checks its sources, its selection and its rows' labels."""

    def __init__(self, config: dict) -> None:
        check_sources(config.get("src"))
        a2g = config.get("a2g_args") or {}
        self.required_labels = [label for flag, label in LABELS.items() if a2g.get(flag)]
        try:
            super().__init__(config)
        except ValueError as err:
            if "No valid ase data found" not in str(err):
                raise
            selection = config.get("select_args") or "all rows"
            raise InputError(
                f"{', '.join(_sources(config['src']))}: no ASE database rows (selection "
                f"{selection}): expected .db / .aselmdb files with at least one row the "
                "selection matches") from None
        for index in sorted({0, len(self) - 1}):
            self.get_atoms(index)

    def row_source(self, idx: int) -> tuple[str, int]:
        """(database file, row id) of dataset index ``idx``."""
        db_index = bisect.bisect(self._idlen_cumulative, idx)
        offset = idx - (self._idlen_cumulative[db_index - 1] if db_index else 0)
        db = self.dbs[db_index]
        return str(getattr(db, "filename", db)), self.db_ids[db_index][offset]

    def get_atoms(self, idx: int):
        """The row's atoms, after checking it holds every label ``a2g_args`` asks for."""
        atoms = super().get_atoms(idx)
        results = atoms.calc.results if atoms.calc is not None else {}
        missing = [label for label in self.required_labels if label not in results]
        if missing:
            path, row = self.row_source(idx)
            flags = ", ".join(f"r_{label}" for label in missing)
            raise InputError(
                f"{path}: row id {row} has no {' or '.join(missing)} (a2g_args {flags} asks "
                f"for it); it holds {sorted(results) or 'no labels'}")
        return atoms
