"""Equivariant building blocks on uniform steerable features ``[N, (L+1)^2, C]``.

Row ``l^2 + l + m`` holds coefficient (l, m) of every channel (e3nn order, the layout of
fairchem's ``SO3_Embedding`` and of :class:`est_fairchem.nn.est_update.ESTUpdate`).
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn

from est_fairchem.nn.irreps_feed_forward import FeedForward
from est_fairchem.nn.irreps_layout import coefficients_to_irreps, irreps_to_coefficients, uniform_irreps


class DegreeLinear(nn.Module):
    """Degree-wise linear map ``[N, K, C_in] -> [N, K, C_out]``: one ``[C_in, C_out]`` matrix per
    degree shared by the 2l+1 orders (the most general equivariant linear map, Schur), a bias
    on degree 0 only.

    The map of fairchem's ``SO3_LinearV2`` (tests/test_uniform_layers.py), kept because that
    stores its weight transposed (``[L+1, C_out, C_in]``) beside a persistent index: old
    checkpoints' EMA and optimizer states, which fairchem restores by parameter position, would
    no longer fit the weight.

    Args:
        lmax: L; in_channels, out_channels: C_in, C_out.
    """

    def __init__(self, lmax: int, in_channels: int, out_channels: int) -> None:
        from fairchem.core.models.equiformer_v2.layer_norm import get_l_to_all_m_expand_index

        super().__init__()
        self.lmax = lmax
        bound = 1.0 / math.sqrt(in_channels)
        weight = torch.empty(lmax + 1, in_channels, out_channels).uniform_(-bound, bound)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        # the degree of each coefficient row
        self.register_buffer("rows", get_l_to_all_m_expand_index(lmax), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, K, C_in] -> [N, K, C_out]."""
        out = torch.einsum("nkc,kcd->nkd", x, self.weight[self.rows].to(x.dtype))
        return torch.cat([out[:, :1] + self.bias.to(out.dtype), out[:, 1:]], dim=1)


class EquivariantRMSNorm(nn.Module):
    """Layer norm of uniform steerable features: LayerNorm over channels on degree 0; each
    degree l > 0 divided by ``sqrt(mean_{m,c} x_lmc^2 + eps)`` (the root mean square over its
    orders and channels, rotation invariant) and scaled per channel. No bias above degree 0.

    The function of fairchem's ``EquivariantLayerNormArray`` (tests/test_uniform_layers.py),
    kept because that holds two parameter tensors where this holds three: old checkpoints'
    EMA and optimizer states, which fairchem restores by parameter position, would not fit.

    Args:
        lmax: L; channels: C; eps: added to the mean squares.
    """

    def __init__(self, lmax: int, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.lmax = lmax
        self.eps = eps
        self.scalar_norm = nn.LayerNorm(channels, eps=eps)
        self.weight = nn.Parameter(torch.ones(lmax, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, (L+1)^2, C] -> [N, (L+1)^2, C]."""
        out = [self.scalar_norm(x[:, :1])]
        for l in range(1, self.lmax + 1):
            field = x[:, l * l : (l + 1) ** 2]
            rms = torch.rsqrt(field.pow(2).mean(dim=(1, 2), keepdim=True) + self.eps)
            out.append(field * rms * self.weight[l - 1].to(x.dtype))
        return torch.cat(out, dim=1)


class UniformFeedForward(nn.Module):
    """A steerable expert on uniform features: Equiformer's feed-forward block (degree-wise
    linear -> gated activation -> degree-wise linear) from ``C x (0e+...+Le)`` through
    ``irreps_mid`` back to the same layout (or, with ``scalar_output``, to ``C x 0e`` only).

    Args:
        lmax: L; channels: C; irreps_mid: hidden irreps (e.g. ``384x0e+192x1e+96x2e``).
        scalar_output: return the degree-0 row only (a last layer).
    """

    def __init__(self, lmax: int, channels: int, irreps_mid: o3.Irreps | str,
                 scalar_output: bool = False) -> None:
        super().__init__()
        self.lmax = lmax
        self.channels = channels
        self.out_lmax = 0 if scalar_output else lmax
        self.ffn = FeedForward(uniform_irreps(lmax, channels), irreps_mid,
                               uniform_irreps(self.out_lmax, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, (L+1)^2, C] -> [N, (L+1)^2, C] ([N, 1, C] with ``scalar_output``)."""
        y = self.ffn(coefficients_to_irreps(x, self.lmax))
        return irreps_to_coefficients(y, self.out_lmax, self.channels)
