"""The EST update: a mixture of hybrid experts on steerable features (spec §5, §6).

Backbone-agnostic: it works on ``[N, (L+1)^2, C]`` tensors; the steerable experts are supplied
by the backbone (EquiformerV2's feed-forward block, Equiformer's, ...), each a module mapping
``[N, (L+1)^2, C] -> [N, (L+1)^2, C]`` with its own normalisation.

    g    = gate(x^(0))                                          [N, n_st + n_sp]
    y_st = sum_i g_i e_i(x)                                     steerable experts
    h    = SA(F(x));  y_sp = F^-1(sum_j g_(n_st+j) s_j(h))      spherical branch
                 (with grid_frame='local': F, F^-1 in a per-node frame, nn/local_frame.py)
    y_sp^(0) <- SiLU(W0 LN(x^(0)) + b0)                          invariant branch (not gated)
    out  = y_st + y_sp
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from est_fairchem.nn.experts import ExpertGate, SphericalExperts
from est_fairchem.nn.local_frame import LocalFrame
from est_fairchem.nn.recompute import recomputed_in_backward
from est_fairchem.nn.spherical_attention import SphericalAttention
from est_fairchem.sphere.points import sphere_points
from est_fairchem.sphere.precision import full_precision, full_precision_dtype
from est_fairchem.sphere.rotation import random_system_matrices, random_system_rotations
from est_fairchem.sphere.transform import SphericalTransform
from est_fairchem.sphere.wigner import WignerFromRotation


class ESTUpdate(nn.Module):
    """Mixture of hybrid experts: steerable experts plus the spherical-attention branch.

    Args:
        lmax: L of the steerable features.
        channels: C.
        steerable_experts: the n_st steerable experts (may be empty).
        num_spherical_experts: n_sp (0 disables the spherical branch).
        spherical_hidden_channels: hidden width of each spherical expert.
        num_points, sampling, repulsion_steps: the sphere point set (see ``sphere_points``).
        num_heads, orientation_embedding: of the spherical attention.
        random_grid_rotation: rotate the grid per system in training (spec §3.4); with
            ``grid_frame='local'`` the rotation turns the grid relative to each node's frame.
        steerable_mixture: ``f(experts, x, gates) -> sum_i gates[:, i] experts[i](x)``
            computing all steerable experts at once (a backbone's batched form of its own
            experts, e.g. ``models.equiformer_v2.experts.mix_eqv2_experts``); None: one call per expert.
        recompute: in training, store only the inputs of the update for backward and
            recompute it there (``torch.utils.checkpoint``, random grid rotations redrawn
            identically): its activations are not kept, for a second forward in backward.
        grid_frame: ``global``: one fixed grid for all nodes (the paper; approximately
            equivariant, spec §14); ``local``: the grid turns with each node's frame, built
            from its degree-1 features (exactly equivariant, see ``nn/local_frame.py``).
        own_gate: build the gate over all experts from ``x^(0)``; False when the caller
            computes the gate weights (another backbone's layout) and passes them in.
        invariant_scalars: replace the degree-0 output of the spherical branch by the
            invariant ``SiLU(W0 LN(x^(0)) + b0)`` (reference behaviour); False keeps the
            grid's own degree-0 output (where only invariants leave the block).
        scalar_output: return only the degree-0 row [N, 1, C] (a last layer whose head reads
            invariants only): the grid's own degree-0 output (``invariant_scalars`` is then
            ignored), and steerable experts that return [N, 1, C]. Every parameter then
            reaches the output; with the full [N, K, C] output the l >= 1 rows of a last layer
            would be computed and never read.
    """

    def __init__(
        self,
        lmax: int,
        channels: int,
        steerable_experts: list[nn.Module],
        num_spherical_experts: int,
        spherical_hidden_channels: int,
        num_points: int,
        sampling: str = "fibonacci",
        repulsion_steps: int = 500,
        num_heads: int = 1,
        orientation_embedding: bool = True,
        random_grid_rotation: bool = True,
        own_gate: bool = True,
        invariant_scalars: bool = True,
        grid_frame: str = "global",
        steerable_mixture: Callable[..., torch.Tensor] | None = None,
        recompute: bool = False,
        scalar_output: bool = False,
    ) -> None:
        super().__init__()
        self.lmax = lmax
        self.channels = channels
        self.num_steerable = len(steerable_experts)
        self.num_spherical = num_spherical_experts
        self.random_grid_rotation = random_grid_rotation
        self.scalar_output = scalar_output
        self.invariant_scalars = invariant_scalars and not scalar_output
        if grid_frame not in ("global", "local"):
            raise ValueError(f"grid_frame={grid_frame!r}: expected 'global' or 'local'")
        self.grid_frame = grid_frame
        self.steerable_experts = nn.ModuleList(steerable_experts)
        self.steerable_mixture = steerable_mixture
        self.recompute = recompute
        if own_gate:
            self.gate = ExpertGate(channels, self.num_steerable + self.num_spherical)
        if self.num_spherical > 0:
            points = sphere_points(sampling, num_points, repulsion_steps if sampling == "fibonacci" else 0)
            self.transform = SphericalTransform(lmax, points)
            if grid_frame == "local":
                self.frame = LocalFrame(channels)
                self.wigner = WignerFromRotation(lmax)
            self.attention = SphericalAttention(channels, num_heads, orientation_embedding)
            self.spherical_experts = SphericalExperts(
                channels, spherical_hidden_channels, num_spherical_experts
            )
            if self.invariant_scalars:
                self.scalar_branch = nn.Sequential(
                    nn.LayerNorm(channels), nn.Linear(channels, channels), nn.SiLU()
                )

    def forward(
        self, x: torch.Tensor, batch: torch.Tensor | None = None, gates: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Apply the update.

        Args:
            x: [N, (L+1)^2, C] steerable node features (the un-normalised residual stream).
            batch: [N] system index of each node, for the per-system grid rotation in training.
            gates: [N, n_st + n_sp] gate weights, required when built with ``own_gate=False``.
        Returns:
            [N, (L+1)^2, C] update (the caller adds the residual); [N, 1, C] with
            ``scalar_output``.
        """
        if self.recompute and self.training and torch.is_grad_enabled():
            return recomputed_in_backward(self._update, x, batch, gates)
        return self._update(x, batch, gates)

    def _update(
        self, x: torch.Tensor, batch: torch.Tensor | None, gates: torch.Tensor | None
    ) -> torch.Tensor:
        # select / narrow rather than x[:, 0, :]-style indexing: each full-range slice would
        # cost a zero fill and a copy in backward
        if gates is None:
            gates = self.gate(x.select(1, 0))
        if self.num_spherical == 0:
            return self.mix_steerable(x, gates)
        if self.num_steerable == 0:  # (and no zero tensor to add the spherical branch to)
            return self.spherical_branch(x, gates, batch)
        out = self.spherical_branch(x, gates.narrow(1, self.num_steerable, self.num_spherical), batch)
        return self.mix_steerable(x, gates.narrow(1, 0, self.num_steerable)) + out

    def mix_steerable(self, x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """``sum_i gates[:, i] * steerable_experts[i](x)``: [N, K, C] ([N, 1, C] with
        ``scalar_output``; zeros without experts)."""
        if self.num_steerable == 0:
            return torch.zeros_like(x.narrow(1, 0, 1) if self.scalar_output else x)
        if self.steerable_mixture is not None:
            return self.steerable_mixture(list(self.steerable_experts), x, gates)
        out = 0
        for i, expert in enumerate(self.steerable_experts):
            out = out + gates[:, i, None, None] * expert(x)
        return out

    def spherical_branch(
        self, x: torch.Tensor, gates: torch.Tensor, batch: torch.Tensor | None
    ) -> torch.Tensor:
        """Transform -> spherical attention -> gated spherical experts -> inverse transform.

        With ``grid_frame='local'`` the grid turns with each node's frame; nodes whose frame
        is ill defined blend towards the fixed grid (``nn/local_frame.py``).

        Args:
            x: [N, (L+1)^2, C]; gates: [N, n_sp] weights of the spherical experts;
            batch: [N] system index (grid rotation in training) or None.
        Returns:
            [N, (L+1)^2, C]; [N, 1, C] with ``scalar_output``.
        """
        if self.grid_frame == "global":
            y = self._on_grid(x, gates, self._global_rotation(x, batch))
        else:
            y = self._on_local_grids(x, gates, batch)
        if not self.invariant_scalars:
            return y
        scalars = self.scalar_branch(x.select(1, 0))  # invariant: unaffected by the rotation
        return torch.cat([scalars.unsqueeze(1), y], dim=1)

    def _on_grid(
        self, x: torch.Tensor, gates: torch.Tensor, rotation: torch.Tensor | None
    ) -> torch.Tensor:
        """The branch on the grid turned by ``rotation`` [N, K, K] (None: the fixed grid).

        Returns [N, K, C]; [N, K - 1, C] (no degree 0) with ``invariant_scalars``; [N, 1, C]
        with ``scalar_output``.
        """
        # Under autocast the rotations, transforms and attention run in float32 with autocast
        # off (see sphere/transform.py); only the linear layers run in half precision.
        # The grid's turn D (per node) enters the transforms' matrices: sampling D x on the
        # fixed grid = sampling x on the turned grid; D^T brings the result back.
        grid = self.transform.to_grid(x, rotation)
        grid = self.attention(grid, self.transform.points, self.transform.log_weights(grid.dtype))
        grid = self.spherical_experts(grid, gates)
        if self.scalar_output:  # D_0 = 1: the degree-0 row needs no turn back
            return self.transform.from_grid(grid, degree_zero_only=True)
        return self.transform.from_grid(grid, rotation, without_degree_zero=self.invariant_scalars)

    def _global_rotation(self, x: torch.Tensor, batch: torch.Tensor | None) -> torch.Tensor | None:
        """The fixed grid's Wigner-D [N, K, K]: a random turn per system in training, None
        (no turn) in eval."""
        if not (self.training and self.random_grid_rotation):
            return None
        return random_system_rotations(self.lmax, batch, x.shape[0], full_precision_dtype(x), x.device)

    def _on_local_grids(
        self, x: torch.Tensor, gates: torch.Tensor, batch: torch.Tensor | None
    ) -> torch.Tensor:
        """The branch in each node's frame F (composed with the system's random turn R in
        training), blended as ``w y(R F) + (1 - w) y(R)`` by the frame's weight w. Nodes with
        w = 0 have F = I (one evaluation, on the fixed grid); only nodes with 0 < w < 1 are
        evaluated twice (their indices are read back: one device sync per block)."""
        dtype = full_precision_dtype(x)
        with full_precision(x.device):
            frames, weights = self.frame(x.to(dtype))  # [N, 3, 3], [N]
            turns = None
            if self.training and self.random_grid_rotation:
                turns = random_system_matrices(batch, x.shape[0], dtype, x.device)
                frames = turns @ frames
            rotation = self.wigner(frames)
        y = self._on_grid(x, gates, rotation)
        band = ((weights > 0) & (weights < 1)).nonzero().squeeze(1)
        if band.numel() == 0:
            return y
        with full_precision(x.device):
            fixed = None if turns is None else self.wigner(turns.index_select(0, band))
        y_fixed = self._on_grid(x.index_select(0, band), gates.index_select(0, band), fixed)
        weight = weights.index_select(0, band).to(y.dtype)[:, None, None]
        blend = weight * y.index_select(0, band) + (1.0 - weight) * y_fixed
        return y.index_copy(0, band, blend)
