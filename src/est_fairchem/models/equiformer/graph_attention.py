"""Equiformer's equivariant graph-attention message block (design §9.2)."""

from __future__ import annotations

import math

import torch
from e3nn import o3
from fairchem.core.models.equiformer_v2.activation import SmoothLeakyReLU
from torch import nn
from torch_geometric.utils import softmax as segment_softmax

from est_fairchem.errors import InputError
from est_fairchem.models.common.radial import RadialMLP
from est_fairchem.models.equiformer.tensor_products import DepthwiseTensorProduct
from est_fairchem.nn.irreps_feed_forward import gated_activation
from est_fairchem.nn.scatter import scatter_sum


def heads_irreps(irreps_head: o3.Irreps, num_heads: int) -> o3.Irreps:
    """``num_heads`` copies of ``irreps_head``, each irrep type's channels grouped by head."""
    return o3.Irreps([(mul * num_heads, ir) for mul, ir in irreps_head])


def head_of_component(irreps_head: o3.Irreps, num_heads: int) -> torch.Tensor:
    """[heads_irreps.dim] head index of each component of ``heads_irreps(irreps_head, H)``."""
    parts = [torch.arange(num_heads).repeat_interleave(mul * ir.dim) for mul, ir in irreps_head]
    return torch.cat(parts)


class GraphAttention(nn.Module):
    """Equivariant graph attention from source nodes j to target nodes i.

    1. ``m_ij = W_src x_j + W_dst x_i`` (irreps_pre_attn);
    2. ``h_ij = DTP(m_ij, Y(r_ij); w(|r_ij|))``, a depthwise tensor product whose weights come
       from a radial MLP of the edge's radial features;
    3. per head, attention logits ``a_h . SmoothLeakyReLU(W_alpha h_ij)`` from the scalars,
       softmax over the incoming edges of i, alpha dropout;
    4. values: nonlinear messages (the configs' choice) pass ``h_ij`` through a gated activation
       and a second depthwise tensor product with ``Y(r_ij)`` (weights shared by all edges);
       linear messages take them linearly from ``h_ij``;
    5. ``out_i = W_out sum_j alpha_ij v_ij``.

    Args:
        irreps_node: input irreps; irreps_sh: edge harmonics; irreps_out: output irreps.
        edge_channels: width of the edge's radial features.
        fc_neurons: hidden widths of the radial MLP.
        irreps_head: irreps of one head's values (its scalar multiplicity is the logit width).
        num_heads: heads.
        irreps_pre_attn: irreps of ``m_ij`` (default ``irreps_node``).
        nonlinear_message: see step 4.
        alpha_drop: dropout of the attention weights.
    """

    def __init__(
        self,
        irreps_node: o3.Irreps | str,
        irreps_sh: o3.Irreps | str,
        irreps_out: o3.Irreps | str,
        edge_channels: int,
        fc_neurons: list[int],
        irreps_head: o3.Irreps | str,
        num_heads: int,
        irreps_pre_attn: o3.Irreps | str | None = None,
        nonlinear_message: bool = True,
        alpha_drop: float = 0.0,
    ) -> None:
        super().__init__()
        irreps_node = o3.Irreps(irreps_node)
        irreps_pre_attn = o3.Irreps(irreps_pre_attn or irreps_node)
        irreps_head = o3.Irreps(irreps_head)
        self.num_heads = num_heads
        self.alpha_channels = irreps_head.count("0e")
        if self.alpha_channels == 0:
            raise InputError(f"irreps_head={irreps_head}: needs scalars (0e) for the attention logits")
        self.nonlinear_message = nonlinear_message
        irreps_alpha = o3.Irreps(f"{num_heads * self.alpha_channels}x0e")
        irreps_value = heads_irreps(irreps_head, num_heads)

        self.merge_src = o3.Linear(irreps_node, irreps_pre_attn, biases=True)
        self.merge_dst = o3.Linear(irreps_node, irreps_pre_attn, biases=False)
        self.dtp = DepthwiseTensorProduct(irreps_pre_attn, irreps_sh, irreps_pre_attn.lmax)
        self.radial = RadialMLP([edge_channels, *fc_neurons, self.dtp.weight_numel])
        self.alpha_linear = o3.Linear(self.dtp.irreps_out, irreps_alpha)
        if nonlinear_message:
            self.value_activation, activation_in, activation_out = gated_activation(irreps_pre_attn)
            self.value_linear = o3.Linear(self.dtp.irreps_out, activation_in, biases=True)
            self.value_dtp = DepthwiseTensorProduct(
                activation_out, irreps_sh, irreps_value.lmax, internal_weights=True
            )
            self.value_out = o3.Linear(self.value_dtp.irreps_out, irreps_value)
        else:
            self.value_out = o3.Linear(self.dtp.irreps_out, irreps_value)
        self.alpha_dot = nn.Parameter(
            torch.randn(num_heads, self.alpha_channels) / math.sqrt(self.alpha_channels)
        )
        self.alpha_act = SmoothLeakyReLU(0.2)
        self.alpha_dropout = nn.Dropout(alpha_drop) if alpha_drop > 0 else None
        self.register_buffer("head_index", head_of_component(irreps_head, num_heads), persistent=False)
        self.proj = o3.Linear(irreps_value, irreps_out, biases=True)

    def forward(
        self, x: torch.Tensor, edge_src: torch.Tensor, edge_dst: torch.Tensor,
        edge_sh: torch.Tensor, edge_radial: torch.Tensor,
    ) -> torch.Tensor:
        """Messages from ``edge_src`` to ``edge_dst``.

        Args:
            x: [N, irreps_node.dim]; edge_src, edge_dst: [E]; edge_sh: [E, irreps_sh.dim];
            edge_radial: [E, edge_channels].
        Returns:
            [N, irreps_out.dim].
        """
        num_nodes = x.shape[0]
        message = self.merge_src(x)[edge_src] + self.merge_dst(x)[edge_dst]
        h = self.dtp(message, edge_sh, self.radial(edge_radial))
        logits = self.alpha_linear(h).view(-1, self.num_heads, self.alpha_channels)
        logits = (self.alpha_act(logits) * self.alpha_dot).sum(dim=-1)  # [E, H]
        alpha = segment_softmax(logits, edge_dst, num_nodes=num_nodes)  # over edges into i
        if self.alpha_dropout is not None:
            alpha = self.alpha_dropout(alpha)
        if self.nonlinear_message:
            value = self.value_activation(self.value_linear(h))
            value = self.value_out(self.value_dtp(value, edge_sh))
        else:
            value = self.value_out(h)
        weighted = value * alpha[:, self.head_index]
        return self.proj(scatter_sum(weighted, edge_dst, num_nodes))
