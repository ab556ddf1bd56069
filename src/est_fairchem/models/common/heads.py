"""Equiformer's scalar property head (IS2RE relaxed energy, QM9 targets)."""

from __future__ import annotations

import math

import torch
from fairchem.core.common.registry import registry
from fairchem.core.models.base import HeadInterface
from torch import nn

from est_fairchem.errors import InputError
from est_fairchem.models.common.graph_statistics import (
    StoredGraphStatistics,
    check_graph_statistics,
)
from est_fairchem.nn.scatter import scatter_sum

OC20_AVG_NUM_NODES = 77.81317  # Equiformer's and fairchem's OC20 statistic (design §9.3)


@registry.register_model("est_equiformer_scalar_head")
class EquiformerScalarHead(StoredGraphStatistics, nn.Module, HeadInterface):
    """Per-atom MLP on the backbone's scalar features, summed per system.

    ``y = sum_i MLP(h_i) / sqrt(avg_num_nodes)`` with ``MLP = Linear -> SiLU -> Linear(1)``;
    fairchem's normalizer then rescales the target (mean, stdev).

    Args:
        backbone: an Equiformer backbone (its ``irreps_feature`` must be scalars).
        output_name: key of the prediction (``energy``; a QM9 target's name).
        avg_num_nodes: normalisation of the sum (OC20 77.81; QM9 18.03); kept in
            checkpoints and checked on load (:mod:`~est_fairchem.models.common.graph_statistics`).
    """

    def __init__(self, backbone, output_name: str = "energy",
                 avg_num_nodes: float = OC20_AVG_NUM_NODES) -> None:
        super().__init__()
        check_graph_statistics(avg_num_nodes=avg_num_nodes)
        self.graph_statistics = {"avg_num_nodes": avg_num_nodes}
        irreps = backbone.irreps_feature
        if irreps.lmax != 0:
            raise InputError(f"irreps_feature={irreps}: the scalar head needs scalar features")
        width = irreps.dim
        self.output_name = output_name
        self.scale = 1 / math.sqrt(avg_num_nodes)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))

    def forward(self, data, emb: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """-> ``{output_name: [num_systems]}``."""
        per_atom = self.mlp(emb["node_embedding"])[:, 0]
        total = scatter_sum(per_atom, data.batch, len(data.natoms)) * self.scale
        return {self.output_name: total}
