"""The mixture of hybrid experts every EST block is built on (design §5.4, the paper's Eqs.
48-51): one gate over all experts from invariant channels, the steerable experts weighted by
their gates, the spherical part (which weights its own experts), and their sum.

    g    = gate(invariants(x))                         [N, n_st + n_sp]
    y_st = sum_i g_i e_i(x)                            steerable experts
    y_sp = spherical_part(x, g_(n_st+1..), context)    spherical experts on a grid
    out  = y_st + y_sp

Its users: :class:`~est_fairchem.nn.est_update.ESTUpdate` (EquiformerV2's and the pure EST's
update), :class:`~est_fairchem.models.equiformer.est_update.EquiformerESTUpdate` (on irreps,
with its projections to and from the sphere) and
:class:`~est_fairchem.models.pure_est.message.ESTMessageBlock` (cross-attention on an edge).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from est_fairchem.nn.recompute import recomputed_in_backward


class HybridExpertMixture(nn.Module):
    """Base class of the EST mixtures (module docstring).

    A subclass creates, in the order its checkpoints hold them (fairchem's EMA and optimizer
    state follow the parameter order), ``gate`` (an :class:`~est_fairchem.nn.experts.ExpertGate`
    over ``num_steerable + num_spherical`` experts), ``steerable_experts`` (an
    ``nn.ModuleList``) and its spherical part; sets ``num_steerable``, ``num_spherical`` and
    ``recompute``; and defines :meth:`invariants` and :meth:`spherical_part`.

    Attributes:
        steerable_mixture: ``f(experts, x, gates) -> sum_i gates[:, i] experts[i](x)``, all
            steerable experts at once (a backbone's batched form of its own experts, e.g.
            ``models.equiformer_v2.experts.mix_eqv2_experts``); None: one call per expert.
        recompute: in training, keep only the mixture's inputs for backward and compute it
            again there (``torch.utils.checkpoint``; random grid rotations are redrawn
            identically): its activations are not kept, for a second forward in backward.
    """

    num_steerable: int
    num_spherical: int
    recompute: bool = False
    steerable_mixture: Callable[..., torch.Tensor] | None = None

    def invariants(self, x: torch.Tensor) -> torch.Tensor:
        """The invariant channels of ``x`` the gate reads, [R, C]."""
        raise NotImplementedError

    def spherical_part(self, x: torch.Tensor, gates: torch.Tensor, *context) -> torch.Tensor:
        """The spherical experts' contribution for ``x``, weighted by ``gates`` [R, n_sp]."""
        raise NotImplementedError

    def mixture(self, x: torch.Tensor, *context) -> torch.Tensor:
        """``y_st + y_sp`` for ``x`` (``context``: what the spherical part needs besides),
        recomputed in backward with ``recompute``."""
        if self.recompute and self.training and torch.is_grad_enabled():
            return recomputed_in_backward(self._mixture, x, *context)
        return self._mixture(x, *context)

    def _mixture(self, x: torch.Tensor, *context) -> torch.Tensor:
        gates = self.gate(self.invariants(x))
        if self.num_spherical == 0:
            return self.mix_steerable(x, gates)
        # narrow rather than gates[:, a:b]: no zero fill and copy of the whole in backward
        y = self.spherical_part(x, gates.narrow(1, self.num_steerable, self.num_spherical),
                                *context)
        if self.num_steerable == 0:  # (and no zero tensor to add the spherical part to)
            return y
        return self.mix_steerable(x, gates.narrow(1, 0, self.num_steerable)) + y

    def mix_steerable(self, x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """``sum_i gates[:, i] * steerable_experts[i](x)`` (n_st >= 1)."""
        if self.steerable_mixture is not None:
            return self.steerable_mixture(list(self.steerable_experts), x, gates)
        out = 0
        for i, expert in enumerate(self.steerable_experts):
            y = expert(x)
            out = out + gates[:, i].view(-1, *([1] * (y.dim() - 1))) * y
        return out
