"""The EST message block: spherical cross-attention between a node pair and its edge (design §8.1).

For the edge j -> i (fairchem's ``edge_index = [j, i]``):

    a_ij = Lin_src(x_j) + Lin_dst(x_i)                       [E, K, C] degree-wise linear
    b_ij = phi_l(|r_ij|) * Y_l(r_ij_hat)                     [E, K, C] edge geometry
    r_ij = R(|r_ij|)                                         [E, C] radial scalars (MLP)
    a'   = a_ij with a'^(0) = a_ij^(0) + r_ij                the pair, aware of the distance
    g    = gate(a'^(0))                                      [E, n_st + n_sp]
    h    = CrossAttn(F(a_ij), F(b_ij)) (+ F(a_ij))           [E, S, C] S queries over S keys
    m_ij = u(|r_ij| / c) (sum_i g_i FFN_i(a') + F^-1(sum_j g_(n_st+j) s_j(h)))
    m_i  = sum_j m_ij / sqrt(avg_degree)                     [N, K, C]

``u`` is the smooth polynomial envelope (``radial.polynomial_envelope``, 0 at the cutoff c
with two vanishing derivatives): the key/value grid's LayerNorm removes the radial amplitude
of b_ij, so without it a message would keep its size up to the cutoff and the energy would
jump when a neighbour crosses it. ``r_ij`` gives the gate and the steerable experts the
distance, which they otherwise could not see (they read only the node pair).

F is the spherical transform (``[.., K, C] -> [.., S, C]``); the query grid is the node pair's
function on the sphere, the key/value grid is the edge's zonal function around its direction
(``sum_m Y_lm(r_hat) Y_lm(p)`` depends only on ``r_hat . p``), so each query point gathers
geometry from the key points it finds relevant. Why the query residual (``+ F(a_ij)``, a
:class:`MessageConfig` option): the attention output is a convex combination of edge values
only; adding the query grid back (a transformer decoder's ``x + CrossAttn(x, memory)``) lets
the point-wise experts form products of node and edge functions, as a tensor product would.

Random grid rotation in training (design §3.5): one Haar rotation per system; an edge uses the
rotation of its target node's system.

Cost per block: ``E S^2 C`` for the attention (QM9, batch 128: E ~ 36k, S = 64, C = 128:
~2e10 multiply-adds each for logits and values) and ``E S C H n_sp`` for the experts; the
activations ``E S C`` per grid dominate memory (see the backbone's ``activation_checkpointing``).
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn

from est_fairchem.models.common.radial import RadialMLP
from est_fairchem.models.pure_est.config import MessageConfig
from est_fairchem.models.pure_est.embedding import RadialHarmonics
from est_fairchem.nn.experts import ExpertGate, SphericalExperts
from est_fairchem.nn.mixture import HybridExpertMixture
from est_fairchem.nn.scatter import scatter_sum
from est_fairchem.nn.spherical_cross_attention import SphericalCrossAttention
from est_fairchem.nn.uniform_layers import DegreeLinear, UniformFeedForward
from est_fairchem.sphere.precision import full_precision_dtype
from est_fairchem.sphere.rotation import random_system_rotations, rotate_rows
from est_fairchem.sphere.transform import SphericalTransform


class ESTMessageBlock(HybridExpertMixture):
    """Messages ``[N, K, C] -> [N, K, C]`` (see the module docstring): per edge, the package's
    mixture (:class:`~est_fairchem.nn.mixture.HybridExpertMixture`) of the steerable experts on
    the distance-aware pair ``a'`` and the cross-attention grid (:meth:`grid_message`).

    Args:
        lmax: L; channels: C.
        num_basis: width of the radial basis; fc_neurons: hidden widths of the radial MLP.
        irreps_mlp_mid: hidden irreps of the steerable experts.
        transform: the spherical transform (shared with the update block).
        config: the message options.
        num_heads, orientation_embedding: of the cross-attention.
        random_grid_rotation: rotate the grid per system in training.
        avg_degree: average incoming edges (aggregation scale 1 / sqrt(avg_degree)).
        alpha_drop: dropout on the cross-attention weights in training.
    """

    def __init__(
        self, lmax: int, channels: int, num_basis: int, fc_neurons: list[int],
        irreps_mlp_mid: o3.Irreps | str, transform: SphericalTransform, config: MessageConfig,
        num_heads: int = 1, orientation_embedding: bool = True, random_grid_rotation: bool = True,
        avg_degree: float = 1.0, alpha_drop: float = 0.0,
    ) -> None:
        super().__init__()
        config = config.resolved(channels)
        self.lmax = lmax
        self.num_steerable = config.num_steerable_experts
        self.num_spherical = config.num_spherical_experts
        self.query_residual = config.query_residual
        self.random_grid_rotation = random_grid_rotation
        self.scale = 1.0 / math.sqrt(avg_degree)
        self.lin_src = DegreeLinear(lmax, channels, channels)
        self.lin_dst = DegreeLinear(lmax, channels, channels)
        self.edge_lift = RadialHarmonics(lmax, channels, num_basis, fc_neurons)
        self.edge_scalars = RadialMLP([num_basis, *fc_neurons, channels])
        self.transform = transform
        self.attention = SphericalCrossAttention(channels, num_heads, orientation_embedding,
                                                 alpha_drop)
        self.gate = ExpertGate(channels, self.num_steerable + self.num_spherical)
        self.steerable_experts = nn.ModuleList(
            UniformFeedForward(lmax, channels, irreps_mlp_mid) for _ in range(self.num_steerable)
        )
        self.spherical_experts = SphericalExperts(channels, config.spherical_hidden_channels,
                                                  self.num_spherical)

    def forward(
        self, x: torch.Tensor, edge_src: torch.Tensor, edge_dst: torch.Tensor,
        edge_radial: torch.Tensor, edge_sh: torch.Tensor, batch: torch.Tensor,
        edge_envelope: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Aggregated messages.

        Args:
            x: [N, K, C] normalised node features.
            edge_src, edge_dst: [E] neighbour j and centre i of each edge.
            edge_radial: [E, num_basis] radial basis; edge_sh: [E, K] harmonics of r_ij.
            batch: [N] system of each node.
            edge_envelope: [E] smooth cutoff u(|r_ij| / c) scaling each message, or None.
        Returns:
            [N, K, C] = sum_j m_ij / sqrt(avg_degree).
        """
        a = self.lin_src(x)[edge_src] + self.lin_dst(x)[edge_dst]  # [E, K, C]
        b = self.edge_lift(edge_radial, edge_sh).to(a.dtype)  # [E, K, C]
        scalars = a.select(1, 0) + self.edge_scalars(edge_radial).to(a.dtype)  # [E, C]
        paired = torch.cat([scalars.unsqueeze(1), a.narrow(1, 1, a.shape[1] - 1)], dim=1)  # a'
        message = self.mixture(paired, a, b, batch[edge_dst], x.shape[0])
        if edge_envelope is not None:
            message = message * edge_envelope[:, None, None].to(message.dtype)
        return scatter_sum(message, edge_dst, x.shape[0]) * self.scale

    def invariants(self, paired: torch.Tensor) -> torch.Tensor:
        return paired.select(1, 0)  # the pair's scalars with the radial ones added

    def spherical_part(self, paired: torch.Tensor, gates: torch.Tensor, a: torch.Tensor,
                       b: torch.Tensor, edge_system: torch.Tensor,
                       num_nodes: int | None = None) -> torch.Tensor:
        return self.grid_message(a, b, gates, edge_system, num_nodes)

    def grid_message(self, a: torch.Tensor, b: torch.Tensor, gates: torch.Tensor,
                     edge_system: torch.Tensor, num_nodes: int | None = None) -> torch.Tensor:
        """Cross-attention and spherical experts on the grid.

        Args:
            a, b: [E, K, C] query and key/value coefficients; gates: [E, n_sp];
            edge_system: [E] system of each edge (its target node's).
            num_nodes: N, a bound on the number of systems (default E).
        Returns:
            [E, K, C].
        """
        rotation = None
        if self.training and self.random_grid_rotation:
            rotation = random_system_rotations(
                self.lmax, edge_system, a.shape[0], full_precision_dtype(a), a.device,
                max_systems=num_nodes,
            )
            a, b = rotate_rows(rotation, a), rotate_rows(rotation, b)  # x on the rotated grid
        # (Per edge, the coefficients are turned rather than folding D into the transforms as
        # the node-level update does: that would keep [E, S, K] matrices for backward instead
        # of one [E, K, K].)
        f_q, f_kv = self.transform.to_grid(a), self.transform.to_grid(b)
        h = self.attention(f_q, f_kv, self.transform.points, self.transform.log_weights(f_q.dtype))
        if self.query_residual:
            h = h + f_q
        y = self.transform.from_grid(self.spherical_experts(h, gates))
        if rotation is not None:
            y = rotate_rows(rotation, y, inverse=True)  # D^T y: back to the input frame
        return y
