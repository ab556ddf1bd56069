"""Any fairchem model with its outputs renamed, so a model that predicts ``energy`` can learn
another system-level property (a QM9 target such as ``homo``) with fairchem's trainer.

fairchem's ``ocp`` trainer looks up each target of ``outputs:`` by name in the model's output
dictionary; hydra models name their heads, but a non-hydra model (EquiformerV3's
``equiformer_v3``, fairchem's ``escn``) always answers ``energy``. Configs::

    model:
      name: est_fairchem.models.RenamedOutputs
      otf_graph: True
      rename: {energy: homo}
      model: {name: equiformer_v3, ...}
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from est_fairchem.errors import InputError


class RenamedOutputs(nn.Module):
    """``model`` (a fairchem model config with ``name``) whose output keys are renamed.

    Args:
        model: the wrapped model's config, built through fairchem's registry.
        rename: old output name -> new output name.
        otf_graph: read by fairchem's batch collater from ``model:``; passed on when the
            wrapped model takes it.
        molecular_graph: build the wrapped model's graphs of molecules here, without
            torch_cluster (:func:`~est_fairchem.models.common.graph.molecular_radius_graph` at
            the model's ``cutoff`` and ``max_neighbors``), and hand them over as the batch's
            ``edge_index`` (the model is built with ``otf_graph: False``, ``use_pbc: False``).
    """

    def __init__(self, model: dict[str, Any], rename: dict[str, str],
                 otf_graph: bool | None = None, molecular_graph: bool = False) -> None:
        super().__init__()
        from fairchem.core.common.registry import registry

        config = dict(model)
        if "name" not in config:
            raise InputError("model.model: expected the wrapped model's 'name'")
        if otf_graph is not None:
            config.setdefault("otf_graph", otf_graph)
        if molecular_graph:
            if config.get("use_pbc", True):
                raise InputError("model.molecular_graph: True needs model.model.use_pbc: False")
            config["otf_graph"] = False
        self.model = registry.get_model_class(config.pop("name"))(**config)
        self.rename = dict(rename)
        self.molecular_graph = molecular_graph

    def forward(self, data) -> dict[str, torch.Tensor]:
        if self.molecular_graph:
            from est_fairchem.models.common.graph import molecular_radius_graph

            data.edge_index = molecular_radius_graph(data.pos, data.batch, self.model.cutoff,
                                                     self.model.max_neighbors)
        return {self.rename.get(key, key): value for key, value in self.model(data).items()}
