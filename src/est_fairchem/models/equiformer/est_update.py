"""The EST update block on Equiformer's irreps features (design §7).

Equiformer's features have a different multiplicity per degree (IS2RE ``256x0e+128x1e``),
while a function on the sphere needs the same channels C_F for every degree. The spherical
branch therefore works on a learned projection:

    u    = LN(x)                                             (the block's norm_2)
    g    = gate(u^(0))                                       [N, n_st + n_sp]
    y_st = sum_i g_i FFN_i(u)                                Equiformer FFN experts
    v    = P_in u                   -> [N, (L+1)^2, C_F]     degree-wise linear projection
    y_sp = P_out SB(v; g_sp)                                 spherical branch, projected back
    out  = y_st + y_sp

Why a degree-wise linear projection rather than, e.g., zero-padding the smaller degrees or
splitting the larger ones: by Schur's lemma a degree-wise linear map is the most general
equivariant linear map between the two layouts, so it loses nothing a fixed map would keep,
lets the model choose which channels reach the sphere, and decouples C_F (the paper's
"intermediate dimension during the Fourier transform") from the backbone's multiplicities;
it costs ``sum_l mul_l C_F`` weights each way (IS2RE, C_F = 128: 49k), small next to one
FFN expert (0.6M).

It is the package's one mixture (:class:`~est_fairchem.nn.mixture.HybridExpertMixture`) with
the projections as its spherical part. With ``est.recompute_update`` the whole update (gate,
experts, projections, branch) keeps only its input for backward and runs again there, with the
same random grid rotation.

When the block's output has only scalars (Equiformer's last block maps to ``512x0e``), only
the degree-0 row of the branch leaves the block; there it is the grid's own degree-0 output
(no invariant override), else the branch would not reach the output at all.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from est_fairchem.models.common.est_config import ESTConfig
from est_fairchem.nn.experts import ExpertGate
from est_fairchem.nn.irreps_feed_forward import FeedForward
from est_fairchem.nn.irreps_layout import coefficients_to_irreps, irreps_to_coefficients, uniform_irreps
from est_fairchem.nn.mixture import HybridExpertMixture


class EquiformerESTUpdate(HybridExpertMixture):
    """EST mixture of hybrid experts on irreps (see the module docstring).

    Args:
        irreps_in: node irreps (scalars first); irreps_mid: hidden irreps of each FFN expert;
        irreps_out: output irreps.
        config: the backbone's resolved EST options (``fourier_channels`` is C_F;
            ``models.common.est_resolution``).
    """

    def __init__(
        self, irreps_in: o3.Irreps, irreps_mid: o3.Irreps, irreps_out: o3.Irreps,
        config: ESTConfig,
    ) -> None:
        super().__init__()
        irreps_in, irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.num_scalars = irreps_in.count("0e")
        self.lmax = irreps_in.lmax
        self.num_steerable = config.num_steerable_experts
        self.num_spherical = config.num_spherical_experts
        self.recompute = config.recompute_update
        if config.fourier_channels is None:
            raise ValueError("EquiformerESTUpdate needs resolved options: est.fourier_channels "
                             "is null (models.common.est_resolution.resolve_est_options)")
        self.channels = config.fourier_channels
        self.gate = ExpertGate(self.num_scalars, self.num_steerable + self.num_spherical)
        self.steerable_experts = nn.ModuleList(
            FeedForward(irreps_in, irreps_mid, irreps_out) for _ in range(self.num_steerable)
        )
        if self.num_spherical > 0:
            uniform = uniform_irreps(self.lmax, self.channels)
            self.to_uniform = o3.Linear(irreps_in, uniform, biases=True)
            self.spherical = config.spherical_branch(self.lmax, self.channels,
                                                     invariant_scalars=irreps_out.lmax > 0)
            self.from_uniform = o3.Linear(uniform, irreps_out, biases=True)

    def forward(self, u: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """[N, irreps_in.dim] normalised features -> [N, irreps_out.dim] update.

        ``batch`` [N] (system of each node) lets the grid rotate per system in training.
        """
        return self.mixture(u, batch)

    def invariants(self, u: torch.Tensor) -> torch.Tensor:
        return u.narrow(1, 0, self.num_scalars)  # (narrow: no full-range slices)

    def spherical_part(self, u: torch.Tensor, gates: torch.Tensor,
                       batch: torch.Tensor | None = None) -> torch.Tensor:
        """``P_out SB(P_in u)``: the spherical branch between the degree-wise projections."""
        v = irreps_to_coefficients(self.to_uniform(u), self.lmax, self.channels)
        return self.from_uniform(coefficients_to_irreps(self.spherical(v, gates, batch), self.lmax))
