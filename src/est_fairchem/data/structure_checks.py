"""Checks of a dataset's structures, row by row, before training: what the models cannot treat
correctly is refused naming the file and the rows.

- Positions and cell must be finite numbers. (ASE then loses the row's labels: a
  ``SinglePointCalculator`` never matches atoms holding NaN, so fairchem stops with
  ``PropertyNotImplementedError`` and no row; the positions are read here from the row itself.)
- A periodic direction needs a cell vector: a row with ``pbc`` True along a direction whose
  cell vector is zero (or periodic vectors that span no volume, area or length) is refused
  (fairchem completes a missing vector with 1 Å and would put an image of every atom 1 Å away).
- All rows share one periodicity (``pbc``). fairchem reads each structure's ``pbc`` but builds
  a batch's graph with the first structure's flags, so a batch mixing periodic and
  non-periodic structures (or bulk and slabs) silently loses or gains periodic images. One
  periodicity throughout, slabs with ``pbc=(True, True, False)`` included, is respected: the
  graph has images along the periodic directions only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from est_fairchem.errors import InputError

SHOWN = 8  # row ids named per problem


@dataclass(frozen=True)
class RowGeometry:
    """What the checks read of one database row."""

    source: str  # the database file
    row: int  # its row id
    pbc: tuple[bool, bool, bool]
    cell: np.ndarray  # [3, 3]
    positions: np.ndarray  # [N, 3]


def _ids(rows: list[tuple[str, int]]) -> str:
    ids = [str(row) for _, row in rows[:SHOWN]]
    return ", ".join(ids) + (f", ... ({len(rows)} rows)" if len(rows) > SHOWN else "")


def _by_source(rows: list[tuple[str, int]]) -> str:
    grouped: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for source, row in rows:
        grouped[source].append((source, row))
    return "; ".join(f"{source}: row id {_ids(group)}" for source, group in grouped.items())


def spelled_pbc(pbc: tuple[bool, bool, bool]) -> str:
    return "(" + ", ".join(str(bool(flag)) for flag in pbc) + ")"


def periodic_without_cell(row: RowGeometry) -> bool:
    """True when the cell vectors of ``row``'s periodic directions are zero or dependent."""
    vectors = row.cell[np.asarray(row.pbc, dtype=bool)]
    if len(vectors) == 0:
        return False
    return int(np.linalg.matrix_rank(vectors, tol=1e-6)) < len(vectors)


def check_row_geometry(rows: Iterable[RowGeometry]) -> None:
    """Raise :class:`InputError` naming the rows with non-finite positions or cell, periodic
    directions without a cell vector, or another periodicity than the other rows'. One pass;
    only row ids are kept."""
    non_finite: list[tuple[str, int]] = []
    no_cell: list[RowGeometry] = []
    groups: dict[tuple[bool, bool, bool], list[tuple[str, int]]] = defaultdict(list)
    for row in rows:
        name = (row.source, row.row)
        if not (np.isfinite(row.positions).all() and np.isfinite(row.cell).all()):
            non_finite.append(name)
        elif periodic_without_cell(row):
            no_cell.append(RowGeometry(row.source, row.row, row.pbc, row.cell, np.empty(0)))
        groups[row.pbc].append(name)
    if non_finite:
        raise InputError(f"{_by_source(non_finite)}: positions or cell hold NaN or inf; every "
                         "coordinate must be a finite number (Å)")
    if no_cell:
        first = no_cell[0]
        raise InputError(
            f"{_by_source([(r.source, r.row) for r in no_cell])}: periodic (pbc) along a "
            f"direction without a cell vector (row id {first.row}: pbc "
            f"{spelled_pbc(first.pbc)}, cell {np.round(first.cell, 3).tolist()}); give these "
            "rows their cell, or pbc=False for molecules")
    if len(groups) > 1:
        ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
        listed = "; ".join(f"{len(group)} with pbc {spelled_pbc(pbc)} ({_by_source(group)})"
                           for pbc, group in ordered)
        raise InputError(
            f"the dataset mixes periodicities: {listed}. fairchem builds each batch's graph "
            "with its first structure's pbc, so the others would silently gain or lose "
            "periodic images; keep structures of one periodicity per dataset (separate "
            "databases or select_args), or give them all the same pbc")
