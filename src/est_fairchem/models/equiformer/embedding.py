"""Node embeddings of Equiformer: atom type, OC20 tag and edge degree (design §9.2)."""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn

from est_fairchem.models.common.radial import RadialMLP
from est_fairchem.models.equiformer.tensor_products import DepthwiseTensorProduct
from est_fairchem.nn.scatter import scatter_sum


class ScalarEmbedding(nn.Module):
    """A learned vector per integer label (element, tag), placed in the scalars of the irreps.

    ``[N] -> [N, irreps.dim]``, zero in every degree above 0. Needs ``irreps`` to start with
    its scalars (checked by the backbone).
    """

    def __init__(self, irreps: o3.Irreps, num_labels: int) -> None:
        super().__init__()
        self.dim = irreps.dim
        self.embedding = nn.Embedding(num_labels, irreps.count("0e"))

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        scalars = self.embedding(labels)
        return nn.functional.pad(scalars, (0, self.dim - scalars.shape[1]))


class IrrepsEdgeDegreeEmbedding(nn.Module):
    """Sum over incoming edges of a learned constant coupled to ``Y(r_ij)`` by radial weights.

    ``e_i = W sum_j DTP(c, Y(r_ij); w(|r_ij|)) / sqrt(avg_degree)``: gives every node degree
    > 0 content from its neighbourhood's geometry before the first block.

    Args:
        irreps_node, irreps_sh: node and harmonic irreps.
        edge_channels: width of the radial features; fc_neurons: radial MLP hidden widths.
        avg_degree: average number of incoming edges (normalisation).
    """

    def __init__(
        self, irreps_node: o3.Irreps, irreps_sh: o3.Irreps, edge_channels: int,
        fc_neurons: list[int], avg_degree: float,
    ) -> None:
        super().__init__()
        channels = irreps_node.count("0e")
        self.constant = nn.Parameter(torch.ones(channels))
        self.dtp = DepthwiseTensorProduct(f"{channels}x0e", irreps_sh, irreps_node.lmax)
        self.radial = RadialMLP([edge_channels, *fc_neurons, self.dtp.weight_numel])
        self.proj = o3.Linear(self.dtp.irreps_out, irreps_node)
        self.scale = 1 / math.sqrt(avg_degree)

    def forward(
        self, num_nodes: int, edge_dst: torch.Tensor, edge_sh: torch.Tensor,
        edge_radial: torch.Tensor,
    ) -> torch.Tensor:
        """-> [num_nodes, irreps_node.dim]."""
        constant = self.constant.to(edge_sh.dtype).expand(edge_sh.shape[0], -1)
        h = self.proj(self.dtp(constant, edge_sh, self.radial(edge_radial)))
        return scatter_sum(h, edge_dst, num_nodes) * self.scale
