"""fairchem trainers of this package, named in configs by these stable dotted paths:
``est_fairchem.trainers.PreemptibleForcesTrainer`` (S2EF, fairchem's ``equiformerv2_forces``
plus a clean stop on SIGTERM/SIGUSR1) and ``est_fairchem.trainers.PreemptibleOCPTrainer``.

They import fairchem, so they are loaded on first access (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "PreemptibleForcesTrainer": "est_fairchem.trainers.preemptible",
    "PreemptibleOCPTrainer": "est_fairchem.trainers.preemptible",
    "PreemptionMixin": "est_fairchem.trainers.preemptible",
    "TrainingPreempted": "est_fairchem.trainers.preemptible",
    "STOP_SIGNALS": "est_fairchem.trainers.preemptible",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
