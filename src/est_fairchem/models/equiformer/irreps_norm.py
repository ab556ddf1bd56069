"""Equiformer's equivariant layer norm on flat irreps features (design §9.2)."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn


class EquivariantLayerNorm(nn.Module):
    """Layer norm of each irrep type separately.

    For a block ``mul x ir`` of a node, viewed as ``[mul, 2l+1]``: scalar blocks are centred
    over their channels; every block is divided by ``sqrt(mean_c mean_m x_cm^2 + eps)`` (the
    component-normalised mean square over the channels), multiplied by a per-channel weight,
    and scalar blocks get a per-channel bias. The norm of a rotated vector is unchanged, so the
    operation commutes with rotations.

    Args:
        irreps: irreps of the features.
        eps: added to the mean square.
    """

    def __init__(self, irreps: o3.Irreps | str, eps: float = 1e-5) -> None:
        super().__init__()
        self.irreps = o3.Irreps(irreps)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.irreps.num_irreps))
        self.bias = nn.Parameter(torch.zeros(self.irreps.count("0e")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, irreps.dim] -> [N, irreps.dim]."""
        out = []
        offset = weight_offset = bias_offset = 0
        for mul, ir in self.irreps:
            field = x.narrow(1, offset, mul * ir.dim).reshape(-1, mul, ir.dim)
            offset += mul * ir.dim
            scalar = ir.l == 0 and ir.p == 1
            if scalar:
                field = field - field.mean(dim=1, keepdim=True)
            mean_square = field.pow(2).mean(dim=(1, 2), keepdim=True)
            field = field * torch.rsqrt(mean_square + self.eps)
            field = field * self.weight[weight_offset : weight_offset + mul, None]
            weight_offset += mul
            if scalar:
                field = field + self.bias[bias_offset : bias_offset + mul, None]
                bias_offset += mul
            out.append(field.reshape(-1, mul * ir.dim))
        return torch.cat(out, dim=1)
