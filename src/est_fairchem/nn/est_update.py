"""The EST update: a mixture of hybrid experts on steerable features (design §5, §6).

Backbone-agnostic: it works on ``[N, (L+1)^2, C]`` tensors; the steerable experts are supplied
by the backbone (EquiformerV2's feed-forward block, Equiformer's, ...), each a module mapping
``[N, (L+1)^2, C] -> [N, (L+1)^2, C]`` with its own normalisation, and the spherical branch is
:class:`~est_fairchem.nn.spherical_branch.SphericalBranch`.

    g    = gate(x^(0))                                          [N, n_st + n_sp]
    y_st = sum_i g_i e_i(x)                                     steerable experts
    y_sp = SB(x; g_(n_st+1..))                                  spherical branch
    out  = y_st + y_sp

A backbone builds it from its config with
:meth:`est_fairchem.models.common.est_config.ESTConfig.update_block`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from est_fairchem.nn.experts import ExpertGate
from est_fairchem.nn.mixture import HybridExpertMixture
from est_fairchem.nn.renamed_keys import accept_old_keys
from est_fairchem.nn.spherical_branch import SphericalBranch

# The spherical branch's parts were the update's own children before the branch was a module.
_BRANCH_PARTS = ("transform.", "frame.", "wigner.", "attention.", "spherical_experts.",
                 "scalar_branch.")


class ESTUpdate(HybridExpertMixture):
    """Mixture of hybrid experts on ``[N, (L+1)^2, C]``: steerable experts plus the spherical
    branch, one gate reading the degree-0 row.

    Args:
        gate: the gate over all n_st + n_sp experts, from ``x^(0)``.
        steerable_experts: the n_st steerable experts (may be empty).
        spherical: the spherical branch with its n_sp experts; None for none.
        steerable_mixture, recompute: see
            :class:`~est_fairchem.nn.mixture.HybridExpertMixture`.
    """

    def __init__(
        self,
        gate: ExpertGate,
        steerable_experts: list[nn.Module],
        spherical: SphericalBranch | None,
        steerable_mixture: Callable[..., torch.Tensor] | None = None,
        recompute: bool = False,
    ) -> None:
        super().__init__()
        self.num_steerable = len(steerable_experts)
        self.num_spherical = spherical.num_experts if spherical is not None else 0
        if self.num_steerable + self.num_spherical == 0:
            raise ValueError("an EST update needs at least one expert")
        # (the order of the parameters, which fairchem's EMA and optimizer state follow)
        self.steerable_experts = nn.ModuleList(steerable_experts)
        self.gate = gate
        self.spherical = spherical
        self.steerable_mixture = steerable_mixture
        self.recompute = recompute
        accept_old_keys(self, {part: f"spherical.{part}" for part in _BRANCH_PARTS})

    def forward(self, x: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the update.

        Args:
            x: [N, (L+1)^2, C] steerable node features (the un-normalised residual stream).
            batch: [N] system index of each node, for the per-system grid rotation in training.
        Returns:
            [N, (L+1)^2, C] update (the caller adds the residual); [N, 1, C] when the branch
            and experts return only the degree-0 row (a last layer).
        """
        return self.mixture(x, batch)

    def invariants(self, x: torch.Tensor) -> torch.Tensor:
        return x.select(1, 0)  # (select: no full-range slice, no zero fill in backward)

    def spherical_part(self, x: torch.Tensor, gates: torch.Tensor,
                       batch: torch.Tensor | None = None) -> torch.Tensor:
        return self.spherical(x, gates, batch)
