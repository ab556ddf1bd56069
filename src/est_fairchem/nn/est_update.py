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
from est_fairchem.nn.recompute import recomputed_in_backward
from est_fairchem.nn.renamed_keys import accept_old_keys
from est_fairchem.nn.spherical_branch import SphericalBranch

# The spherical branch's parts were the update's own children before the branch was a module.
_BRANCH_PARTS = ("transform.", "frame.", "wigner.", "attention.", "spherical_experts.",
                 "scalar_branch.")


class ESTUpdate(nn.Module):
    """Mixture of hybrid experts: steerable experts plus the spherical branch, one gate.

    Args:
        gate: the gate over all n_st + n_sp experts, from ``x^(0)``.
        steerable_experts: the n_st steerable experts (may be empty).
        spherical: the spherical branch with its n_sp experts; None for none.
        steerable_mixture: ``f(experts, x, gates) -> sum_i gates[:, i] experts[i](x)``
            computing all steerable experts at once (a backbone's batched form of its own
            experts, e.g. ``models.equiformer_v2.experts.mix_eqv2_experts``); None: one call per expert.
        recompute: in training, store only the inputs of the update for backward and
            recompute it there (``torch.utils.checkpoint``, random grid rotations redrawn
            identically): its activations are not kept, for a second forward in backward.
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
        if self.recompute and self.training and torch.is_grad_enabled():
            return recomputed_in_backward(self._update, x, batch)
        return self._update(x, batch)

    def _update(self, x: torch.Tensor, batch: torch.Tensor | None) -> torch.Tensor:
        # select / narrow rather than x[:, 0, :]-style indexing: each full-range slice would
        # cost a zero fill and a copy in backward
        gates = self.gate(x.select(1, 0))
        if self.spherical is None:
            return self.mix_steerable(x, gates)
        if self.num_steerable == 0:  # (and no zero tensor to add the spherical branch to)
            return self.spherical(x, gates, batch)
        out = self.spherical(x, gates.narrow(1, self.num_steerable, self.num_spherical), batch)
        return self.mix_steerable(x, gates.narrow(1, 0, self.num_steerable)) + out

    def mix_steerable(self, x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """``sum_i gates[:, i] * steerable_experts[i](x)`` (n_st >= 1): [N, K, C], or what the
        experts return."""
        if self.steerable_mixture is not None:
            return self.steerable_mixture(list(self.steerable_experts), x, gates)
        out = 0
        for i, expert in enumerate(self.steerable_experts):
            out = out + gates[:, i, None, None] * expert(x)
        return out
