"""Edge geometry and the edge-degree embedding on uniform features (design §8, §9.1)."""

from __future__ import annotations

import math

import torch
from e3nn import o3
from fairchem.core.models.equiformer_v2.layer_norm import get_l_to_all_m_expand_index
from torch import nn

from est_fairchem.models.common.radial import RadialMLP
from est_fairchem.nn.scatter import scatter_sum


def edge_harmonics(lmax: int, edge_vec: torch.Tensor) -> torch.Tensor:
    """[E, 3] edge vectors -> [E, (L+1)^2] real SH of their directions, e3nn's convention with
    ``normalization='component'`` (``sum_m Y_lm^2 = 2l+1``, so ``Y_00 = 1``)."""
    return o3.spherical_harmonics(list(range(lmax + 1)), edge_vec, normalize=True,
                                  normalization="component")


class RadialHarmonics(nn.Module):
    """``b_ij[l^2+l+m, c] = phi_lc(|r_ij|) Y_lm(r_ij_hat)``: the edge's harmonics lifted to C
    channels by a radial MLP giving one weight per (degree, channel).

    Args:
        lmax: L; channels: C; num_basis: width of the radial basis; fc_neurons: hidden widths.
    """

    def __init__(self, lmax: int, channels: int, num_basis: int, fc_neurons: list[int]) -> None:
        super().__init__()
        self.lmax = lmax
        self.channels = channels
        self.radial = RadialMLP([num_basis, *fc_neurons, (lmax + 1) * channels])
        self.register_buffer("rows", get_l_to_all_m_expand_index(lmax), persistent=False)

    def forward(self, edge_radial: torch.Tensor, edge_sh: torch.Tensor) -> torch.Tensor:
        """[E, num_basis] radial basis, [E, (L+1)^2] harmonics -> [E, (L+1)^2, C]."""
        phi = self.radial(edge_radial).view(-1, self.lmax + 1, self.channels)
        return phi[:, self.rows] * edge_sh[:, :, None]


class UniformEdgeDegreeEmbedding(nn.Module):
    """``e_i = sum_j phi(|r_ij|, Z_i, Z_j) * Y(r_ij_hat) / sqrt(avg_degree)`` [N, (L+1)^2, C]:
    gives every degree of the initial features content from the neighbourhood's geometry
    (EquiformerV2's edge-degree embedding, in the uniform layout). The radial MLP reads the
    radial basis and learned embeddings of both elements.

    Args:
        lmax: L; channels: C; num_basis: radial basis width; fc_neurons: hidden widths;
        max_num_elements: element table size; avg_degree: average incoming edges.
    """

    def __init__(self, lmax: int, channels: int, num_basis: int, fc_neurons: list[int],
                 max_num_elements: int, avg_degree: float) -> None:
        super().__init__()
        width = fc_neurons[0] if fc_neurons else channels
        self.source = nn.Embedding(max_num_elements, width)
        self.target = nn.Embedding(max_num_elements, width)
        self.lift = RadialHarmonics(lmax, channels, num_basis + 2 * width, fc_neurons)
        self.scale = 1.0 / math.sqrt(avg_degree)

    def forward(self, atomic_numbers: torch.Tensor, edge_src: torch.Tensor,
                edge_dst: torch.Tensor, edge_radial: torch.Tensor, edge_sh: torch.Tensor,
                edge_envelope: torch.Tensor | None = None) -> torch.Tensor:
        """-> [N, (L+1)^2, C] (N = len(atomic_numbers)); ``edge_envelope`` [E] (a smooth
        cutoff) scales each edge's term, so an edge enters and leaves continuously."""
        dtype = edge_radial.dtype
        features = torch.cat([edge_radial, self.source(atomic_numbers[edge_src]).to(dtype),
                              self.target(atomic_numbers[edge_dst]).to(dtype)], dim=1)
        per_edge = self.lift(features, edge_sh)
        if edge_envelope is not None:
            per_edge = per_edge * edge_envelope[:, None, None].to(per_edge.dtype)
        return scatter_sum(per_edge, edge_dst, len(atomic_numbers)) * self.scale
