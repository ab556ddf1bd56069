"""fairchem's ``AseDBDataset`` (the ``ase_db`` format: ASE ``.db`` / ``.aselmdb`` files) with
checks that name the file, the row and the key.

Configs name it by its dotted path (``format`` of ``dataset.train``, inherited by the other
splits)::

    dataset:
      train:
        format: est_fairchem.data.CheckedAseDBDataset
        src: my_data/train.db
        a2g_args: {r_energy: True, r_forces: True, r_stress: True}

Before training: a missing ``src``, a file that is not an ASE database (a text file named
``.db``: sqlite3 alone names no file) and a ``select_args``
selection that matches no row fail with one line naming the path (and the selection); the
first and last rows are read, so a database without the labels ``a2g_args`` asks for fails
at once. Any later row without them fails when it is read, naming the file, its row id and
the missing key (fairchem otherwise stops inside ASE with "no calculator" or a property
error). Every row's positions, cell and periodicity are read once before training and what
the models cannot treat correctly is refused naming the rows: NaN or inf coordinates, a
periodic direction without a cell vector, rows of different ``pbc``
(:mod:`est_fairchem.data.structure_checks`). Normalizer values written in the config are
checked against a sample of the training targets (:mod:`est_fairchem.data.normalizer_check`).
Valid data are read exactly as by ``AseDBDataset``.

It also knows every row's number of atoms (from the same pass over the rows, without their
labels), which fairchem's ``load_balancing: atoms`` needs: with plain
``ase_db`` and no metadata file fairchem 1.10 refuses that option (``UnsupportedDatasetError``
at the start of training).
"""

from __future__ import annotations

import bisect
import glob
import sqlite3
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np

from fairchem.core.datasets.ase_datasets import AseDBDataset

from est_fairchem.data.normalizer_check import check_written_normalizers
from est_fairchem.data.structure_checks import RowGeometry, check_row_geometry
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
        self._check_rows()
        for index in sorted({0, len(self) - 1}):
            self.get_atoms(index)
        check_written_normalizers(self, config.get("transforms"),
                                  ", ".join(_sources(config["src"])))

    def _load_dataset_get_ids(self, config: dict) -> list[int]:
        """fairchem's, with a file that is not a database named (sqlite3 names none)."""
        try:
            return super()._load_dataset_get_ids(config)
        except sqlite3.DatabaseError as err:
            db = self.dbs[len(self.db_ids)]  # fairchem lists each database's rows in order
            raise InputError(
                f"{getattr(db, 'filename', db)}: not an ASE database (sqlite3: {err}); expected "
                "an ASE .db (SQLite) or .aselmdb file written with ase.db.connect") from None

    def __del__(self) -> None:
        if hasattr(self, "dbs"):  # AseDBDataset.__del__ needs a finished __init__
            super().__del__()

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

    def _rows(self) -> Iterator[tuple[int, RowGeometry]]:
        """(database index, the row's file, id, pbc, cell and positions) of every row, one
        pass over the databases without the rows' data and labels."""
        for index, (db, ids) in enumerate(zip(self.dbs, self.db_ids)):
            source = str(getattr(db, "filename", db))
            wanted = set(ids)
            for row in db.select(**self.select_args, include_data=False):
                if row.id in wanted:
                    yield index, RowGeometry(source, row.id, tuple(bool(f) for f in row.pbc),
                                             np.asarray(row.cell, dtype=float),
                                             np.asarray(row.positions, dtype=float))

    def _check_rows(self) -> None:
        """:func:`check_row_geometry` over every row, counting the atoms on the way."""
        sizes: dict[tuple[int, int], int] = {}

        def counted() -> Iterator[RowGeometry]:
            for index, row in self._rows():
                sizes[index, row.row] = len(row.positions)
                yield row

        check_row_geometry(counted())
        self.__dict__["natoms"] = np.asarray(
            [sizes[index, row_id] for index, ids in enumerate(self.db_ids) for row_id in ids],
            dtype=int)

    @cached_property
    def natoms(self) -> np.ndarray:
        """[len(self)] atoms per structure, in dataset order (set by the start checks)."""
        self._check_rows()
        return self.__dict__["natoms"]

    @cached_property
    def _metadata(self) -> dict:
        """fairchem's metadata (from files, if any) with ``natoms`` added: what its samplers
        read, also through the ``Subset`` the trainer wraps datasets in."""
        return {**super()._metadata, "natoms": self.natoms}
