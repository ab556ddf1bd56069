"""Datasets of this package. ``est_fairchem.data.CheckedLmdbDataset``,
``CheckedOC22LmdbDataset`` and ``CheckedAseDBDataset`` (fairchem's ``LmdbDataset``,
``OC22LmdbDataset`` and ``AseDBDataset`` with pre-flight
checks, for ``dataset.train.format`` in configs) import fairchem, so they are loaded on first
access (PEP 562)."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"CheckedLmdbDataset": "est_fairchem.data.checked_lmdb",
         "CheckedOC22LmdbDataset": "est_fairchem.data.checked_lmdb",
         "CheckedAseDBDataset": "est_fairchem.data.checked_ase_db"}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
