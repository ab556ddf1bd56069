"""EquiformerV2 with EST update blocks (the paper's OC20 S2EF model; design §6).

Each fairchem ``TransBlockV2`` keeps its SO(2) graph-attention message block (``norm_1`` +
``ga``); its update block (``norm_2`` + ``ffn``) is replaced by the EST mixture of hybrid
experts, whose steerable experts are copies of EquiformerV2's own feed-forward block, each with
its own equivariant pre-norm. Everything else (embeddings, final norm, heads) is fairchem's.

Configs name the backbone by its dotted path so the plain ``fairchem`` command finds it::

    model:
      name: hydra
      backbone:
        model: est_fairchem.models.EquiformerV2ESTBackbone
        ...EquiformerV2 options...
        est: {num_points: 90, num_steerable_experts: 4, num_spherical_experts: 4}
      heads:
        energy: {module: equiformerV2_scalar_head}
        forces: {module: equiformerV2_vector_head}
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from fairchem.core.common.registry import registry
from fairchem.core.models.equiformer_v2.so3 import SO3_Embedding
from fairchem.core.models.equiformer_v2.transformer_block import TransBlockV2
from fairchem.core.models.equiformer_v2.weight_initialization import eqv2_init_weights
from torch import nn

from est_fairchem.models.common.est_config import ESTConfigError
from est_fairchem.models.common.est_preset import log_est_options, preset_name
from est_fairchem.models.common.est_resolution import resolve_est_options
from est_fairchem.models.common.input_checks import check_finite_structures, check_graph_has_edges
from est_fairchem.models.common.trained_options import StoredESTOptions, function_options
from est_fairchem.models.equiformer_v2.experts import EqV2SteerableExpert, can_batch, mix_eqv2_experts
from est_fairchem.models.equiformer_v2.molecular import EquiformerV2Backbone
from est_fairchem.nn.est_update import ESTUpdate


class ESTTransBlockV2(nn.Module):
    """EquiformerV2 message block (taken from a built ``TransBlockV2``) + EST update block.

    ``x <- x + DropPath(GA(LN(x)))``;  ``x <- x + DropPath(EST(x))`` (design §6).
    """

    def __init__(self, block: TransBlockV2, update: ESTUpdate) -> None:
        super().__init__()
        if block.ffn_shortcut is not None:
            raise ValueError("EST update blocks need equal input and output channels")
        self.norm_1 = block.norm_1
        self.ga = block.ga
        self.drop_path = block.drop_path
        self.proj_drop = block.proj_drop
        self.update = update

    def _regularize(self, x: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        if self.drop_path is not None:
            x = self.drop_path(x, batch)
        if self.proj_drop is not None:
            x = self.proj_drop(x, batch)
        return x

    def forward(
        self,
        x: SO3_Embedding,
        atomic_numbers: torch.Tensor,
        edge_distance: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor,
        node_offset: int = 0,
    ) -> SO3_Embedding:
        """Same signature as fairchem's ``TransBlockV2.forward``."""
        out = x.clone()
        residual = out.embedding
        out.embedding = self.norm_1(out.embedding)
        out = self.ga(out, atomic_numbers, edge_distance, edge_index, node_offset)
        hidden = self._regularize(out.embedding, batch) + residual
        out.embedding = self._regularize(self.update(hidden, batch), batch) + hidden
        return out


@registry.register_model("est_equiformer_v2_backbone")
class EquiformerV2ESTBackbone(StoredESTOptions, EquiformerV2Backbone):
    """fairchem's EquiformerV2 backbone whose update blocks are EST (hydra backbone).

    Takes every ``EquiformerV2Backbone`` option plus ``est``, the EST options
    (see :class:`est_fairchem.models.common.est_config.ESTConfig`; checkpoints keep them:
    :mod:`est_fairchem.models.common.trained_options`); molecules need no torch_cluster
    (:class:`~est_fairchem.models.common.graph.MolecularGraphMixin`). Output as EquiformerV2:
    ``{"node_embedding": SO3_Embedding [N, (L+1)^2, C], "graph": GraphData}``.
    """

    def __init__(self, est: dict[str, Any] | None = None, **eqv2_options: Any) -> None:
        super().__init__(**eqv2_options)  # checks and keeps the graph statistics
        if len(self.lmax_list) != 1:
            raise ESTConfigError(
                f"lmax_list={self.lmax_list}: EST supports a single resolution (one lmax)"
            )
        self.est_config = resolve_est_options(est, "equiformer_v2", self.lmax_list[0],
                                              self.sphere_channels, self.ffn_hidden_channels)
        self.est_options = function_options(self.est_config)
        log_est_options(self, preset_name(est))
        self.blocks = nn.ModuleList(
            ESTTransBlockV2(block, self._build_update()) for block in self.blocks
        )

    def forward(self, data) -> dict[str, Any]:
        """fairchem's EquiformerV2 forward, after refusing non-finite positions or cells."""
        check_finite_structures(data, check_cell=self.use_pbc)
        return super().forward(data)

    def generate_graph(self, data, *args, **kwargs):
        """fairchem's graph, refusing a batch without edges (isolated atoms) by name."""
        graph = super().generate_graph(data, *args, **kwargs)
        check_graph_has_edges(graph.edge_index, data, kwargs.get("cutoff") or self.cutoff)
        return graph

    def _build_update(self) -> ESTUpdate:
        cfg = self.est_config
        experts = [EqV2SteerableExpert(self, cfg.steerable_hidden_channels)
                   for _ in range(cfg.num_steerable_experts)]
        update = cfg.update_block(self.lmax_list[0], self.sphere_channels, experts,
                                  mix_eqv2_experts if can_batch(experts) else None)
        update.apply(partial(eqv2_init_weights, weight_init=self.weight_init))
        return update
