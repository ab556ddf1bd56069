"""EquiformerV2 feed-forward blocks as steerable experts, and their batched gated mixture.

Each expert is fairchem's ``FeedForwardNetwork`` with its own equivariant pre-norm
(:class:`EqV2SteerableExpert`, whose parameters keep fairchem's names so EquiformerV2
checkpoints load into them). :func:`mix_eqv2_experts` computes ``sum_i g_i e_i(x)`` for all
experts at once from the same parameters: one degree-wise linear map for all experts, one
projection to EquiformerV2's grid and back for all of them, a grouped grid MLP, and one output
map that also sums the experts. Same function as calling the experts one by one (float
round-off aside), with E times fewer grid projections and kernel launches.

Expert i (``use_grid_mlp`` with ``use_sep_s2_act``, EquiformerV2's OC20 setting)::

    n_i = Norm_i(x)                                    [N, K, C]
    h_i = W1_i n_i (+ b1_i on degree 0)                [N, K, H]   degree-wise linear
    s_i = SiLU(A_i n_i^(0) + a_i)                      [N, H]
    h_i = F^-1 MLP_i(F h_i); h_i^(0) <- s_i            grid MLP on the S2 grid
    e_i = W2_i h_i (+ b2_i on degree 0)                [N, K, C]
"""

from __future__ import annotations

import torch
from fairchem.core.models.equiformer_v2.layer_norm import get_normalization_layer
from fairchem.core.models.equiformer_v2.so3 import SO3_Embedding
from fairchem.core.models.equiformer_v2.transformer_block import FeedForwardNetwork
from torch import nn
from torch.nn import functional as F


class EqV2SteerableExpert(nn.Module):
    """EquiformerV2's feed-forward block with its own pre-norm, on plain tensors.

    ``[N, (L+1)^2, C] -> [N, (L+1)^2, C]``.

    Args:
        backbone: the built ``EquiformerV2Backbone`` whose options (lmax, mmax, channels,
            norm, activation flags, SO3 grid) the expert takes.
        hidden_channels: H of the feed-forward block.
    """

    def __init__(self, backbone: nn.Module, hidden_channels: int) -> None:
        super().__init__()
        self.lmax_list = list(backbone.lmax_list)
        self.channels = backbone.sphere_channels
        self.norm = get_normalization_layer(
            backbone.norm_type, lmax=max(self.lmax_list), num_channels=self.channels
        )
        self.ffn = FeedForwardNetwork(
            sphere_channels=self.channels,
            hidden_channels=hidden_channels,
            output_channels=self.channels,
            lmax_list=self.lmax_list,
            mmax_list=list(backbone.mmax_list),
            SO3_grid=backbone.SO3_grid,
            activation=backbone.ffn_activation,
            use_gate_act=backbone.use_gate_act,
            use_grid_mlp=backbone.use_grid_mlp,
            use_sep_s2_act=backbone.use_sep_s2_act,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = SO3_Embedding(0, self.lmax_list.copy(), self.channels, x.device, x.dtype)
        emb.set_embedding(self.norm(x))
        return self.ffn(emb).embedding


def can_batch(experts: list[nn.Module]) -> bool:
    """Whether :func:`mix_eqv2_experts` covers these experts: EquiformerV2 grid-MLP experts
    with separable S2 activation (the OC20 configs), one resolution."""
    return len(experts) > 0 and all(
        isinstance(e, EqV2SteerableExpert) and e.ffn.use_grid_mlp and e.ffn.use_sep_s2_act
        and len(e.lmax_list) == 1 for e in experts
    )


def _degree_weights(layers: list[nn.Module]) -> torch.Tensor:
    """Stacked ``SO3_LinearV2`` weights expanded to every coefficient: [E, K, out, in]."""
    return torch.stack([layer.weight.index_select(0, layer.expand_index) for layer in layers])


def _grid_mlp(h: torch.Tensor, weights: list[torch.Tensor], to_grid: torch.Tensor,
              from_grid: torch.Tensor) -> torch.Tensor:
    """[N, K, E, H] coefficients -> grid -> per-expert MLP -> [N, K, E, H] coefficients.

    ``weights``: the three [E, H, H] (out, in) layers; ``to_grid`` [B, A, K];
    ``from_grid`` [B, A, K].
    """
    n, k, e, width = h.shape
    grid = torch.einsum("bak,nkc->nbac", to_grid, h.reshape(n, k, e * width))
    shape = grid.shape
    grid = grid.reshape(-1, e, width).transpose(0, 1)  # [E, P, H]
    for index, weight in enumerate(weights):
        grid = torch.bmm(grid, weight.transpose(1, 2))
        if index < len(weights) - 1:
            grid = F.silu(grid)
    grid = grid.transpose(0, 1).reshape(shape)
    return torch.einsum("bak,nbac->nkc", from_grid, grid).view(n, k, e, width)


def mix_eqv2_experts(
    experts: list[EqV2SteerableExpert], x: torch.Tensor, gates: torch.Tensor
) -> torch.Tensor:
    """``sum_i gates[:, i] * experts[i](x)`` for all experts at once.

    Args:
        experts: E experts accepted by :func:`can_batch`.
        x: [N, K, C] node features.
        gates: [N, E] gate weights of these experts.
    Returns:
        [N, K, C].
    """
    ffns = [expert.ffn for expert in experts]
    normed = torch.stack([expert.norm(x) for expert in experts])  # [E, N, K, C]
    hidden = torch.einsum("enkc,ekhc->nkeh", normed, _degree_weights([f.so3_linear_1 for f in ffns]))
    first_bias = torch.stack([f.so3_linear_1.bias for f in ffns])  # [E, H]
    scalar_weight = torch.stack([f.scalar_mlp[0].weight for f in ffns])  # [E, H, C]
    scalar_bias = torch.stack([f.scalar_mlp[0].bias for f in ffns])
    scalars = F.silu(torch.einsum("enc,ehc->neh", normed[:, :, 0], scalar_weight) + scalar_bias)
    hidden = torch.cat([hidden[:, :1] + first_bias, hidden[:, 1:]], dim=1)

    lmax = experts[0].lmax_list[0]
    so3_grid = ffns[0].SO3_grid[lmax][lmax]
    columns = so3_grid.mapping.coefficient_idx(lmax, lmax)
    to_grid = so3_grid.get_to_grid_mat(x.device)[:, :, columns].to(x.dtype)
    from_grid = so3_grid.get_from_grid_mat(x.device)[:, :, columns].to(x.dtype)
    mlp_weights = [torch.stack([f.grid_mlp[i].weight for f in ffns]) for i in (0, 2, 4)]
    hidden = _grid_mlp(hidden, mlp_weights, to_grid, from_grid)
    hidden = torch.cat([scalars[:, None], hidden[:, 1:]], dim=1)  # [N, K, E, H]

    hidden = hidden * gates[:, None, :, None].to(hidden.dtype)
    out = torch.einsum("nkeh,ekch->nkc", hidden, _degree_weights([f.so3_linear_2 for f in ffns]))
    second_bias = gates.to(out.dtype) @ torch.stack([f.so3_linear_2.bias for f in ffns])  # [N, C]
    return torch.cat([out[:, :1] + second_bias[:, None], out[:, 1:]], dim=1)
