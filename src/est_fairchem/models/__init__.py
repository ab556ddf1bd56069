"""Public model classes. Configs and checkpoints name them by these dotted paths, which stay
stable: ``est_fairchem.models.EquiformerV2ESTBackbone`` (OC20 S2EF) and
``EquiformerV2Backbone`` (fairchem's, with molecular graphs without torch_cluster),
``est_fairchem.models.EquiformerBackbone`` / ``EquiformerESTBackbone`` with
``EquiformerScalarHead`` (OC20 IS2RE, QM9), ``est_fairchem.models.WarmStartHydraModel``,
``est_fairchem.models.RenamedOutputs`` (any model's outputs under other names).

The classes import fairchem, so they are loaded on first access (PEP 562): importing
``est_fairchem.models`` alone stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from est_fairchem.models.common.est_config import ESTConfig, ESTConfigError

_LAZY = {
    "EquiformerV2ESTBackbone": "est_fairchem.models.equiformer_v2.backbone",
    "EquiformerV2Backbone": "est_fairchem.models.equiformer_v2.molecular",
    "WarmStartHydraModel": "est_fairchem.models.equiformer_v2.warm_start_hydra",
    "EquiformerBackbone": "est_fairchem.models.equiformer.backbone",
    "EquiformerESTBackbone": "est_fairchem.models.equiformer.backbone",
    "EquiformerScalarHead": "est_fairchem.models.common.heads",
    "EquivariantRank2Head": "est_fairchem.models.common.stress_head",
    "ESTBackbone": "est_fairchem.models.pure_est.backbone",
    "RenamedOutputs": "est_fairchem.models.common.renamed_outputs",
}

__all__ = ["ESTConfig", "ESTConfigError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'est_fairchem.models' has no attribute {name!r}")
