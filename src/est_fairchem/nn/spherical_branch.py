"""The spherical branch of the EST update (design §4-§6): steerable features to a grid on the
sphere, spherical attention and gated point-wise experts there, and back.

    h    = SA(F(x));  y = F^-1(sum_j g_j s_j(h))                on the grid
                 (with grid_frame='local': F, F^-1 in a per-node frame, nn/local_frame.py)
    y^(0) <- SiLU(W0 LN(x^(0)) + b0)                             invariant scalars (not gated)
"""

from __future__ import annotations

import torch
from torch import nn

from est_fairchem.errors import InputError
from est_fairchem.nn.experts import SphericalExperts
from est_fairchem.nn.local_frame import LocalFrame
from est_fairchem.nn.renamed_keys import accept_old_keys
from est_fairchem.nn.spherical_attention import SphericalAttention
from est_fairchem.sphere.points import sphere_points
from est_fairchem.sphere.precision import full_precision, full_precision_dtype
from est_fairchem.sphere.rotation import random_system_matrices, random_system_rotations
from est_fairchem.sphere.transform import SphericalTransform
from est_fairchem.sphere.wigner import WignerFromRotation

GRID_FRAMES = ("global", "local")


class InvariantScalars(nn.Module):
    """``SiLU(W0 LN(x^(0)) + b0)``: the degree-0 output of the branch from the invariant input
    channels, untouched by the grid (the reference implementation's behaviour).

    Args:
        channels: C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.linear = nn.Linear(channels, channels)
        self.act = nn.SiLU()

    def forward(self, scalars: torch.Tensor) -> torch.Tensor:
        """[N, C] -> [N, C]."""
        return self.act(self.linear(self.norm(scalars)))


class SphericalBranch(nn.Module):
    """Transform -> spherical attention -> gated spherical experts -> inverse transform.

    Args:
        lmax: L of the steerable features.
        channels: C.
        num_experts: n_sp spherical experts, mixed by gate weights given to ``forward``.
        hidden_channels: hidden width of each spherical expert.
        num_points, sampling, repulsion_steps: the sphere point set (see ``sphere_points``).
        num_heads, orientation_embedding: of the spherical attention.
        random_grid_rotation: rotate the grid per system in training (design §3.5); with
            ``grid_frame='local'`` the rotation turns the grid relative to each node's frame.
        grid_frame: ``global``: one fixed grid for all nodes (the paper; approximately
            equivariant, design §13.1); ``local``: the grid turns with each node's frame, built
            from its degree-1 features (exactly equivariant, see ``nn/local_frame.py``).
        invariant_scalars: replace the degree-0 output by :class:`InvariantScalars`; False
            keeps the grid's own degree-0 output (where only invariants leave the block).
        scalar_output: return only the degree-0 row [N, 1, C] (a last layer whose head reads
            invariants only): the grid's own degree-0 output (``invariant_scalars`` is then
            ignored), so that every parameter reaches the output.
    """

    def __init__(
        self,
        lmax: int,
        channels: int,
        num_experts: int,
        hidden_channels: int,
        num_points: int,
        sampling: str = "fibonacci",
        repulsion_steps: int = 500,
        num_heads: int = 1,
        orientation_embedding: bool = True,
        random_grid_rotation: bool = True,
        grid_frame: str = "global",
        invariant_scalars: bool = True,
        scalar_output: bool = False,
    ) -> None:
        super().__init__()
        if grid_frame not in GRID_FRAMES:
            raise InputError(f"grid_frame={grid_frame!r}: expected one of {list(GRID_FRAMES)}")
        self.lmax = lmax
        self.channels = channels
        self.num_experts = num_experts
        self.random_grid_rotation = random_grid_rotation
        self.grid_frame = grid_frame
        self.scalar_output = scalar_output
        self.invariant_scalars = invariant_scalars and not scalar_output
        points = sphere_points(sampling, num_points, repulsion_steps)  # (Fibonacci only)
        self.transform = SphericalTransform(lmax, points)
        if grid_frame == "local":
            self.frame = LocalFrame(channels)
            self.wigner = WignerFromRotation(lmax)
        self.attention = SphericalAttention(channels, num_heads, orientation_embedding)
        self.spherical_experts = SphericalExperts(channels, hidden_channels, num_experts)
        if self.invariant_scalars:
            self.scalar_branch = InvariantScalars(channels)
        accept_old_keys(self, {"scalar_branch.0.": "scalar_branch.norm.",
                               "scalar_branch.1.": "scalar_branch.linear."})

    def forward(
        self, x: torch.Tensor, gates: torch.Tensor, batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Apply the branch.

        With ``grid_frame='local'`` the grid turns with each node's frame; nodes whose frame
        is ill defined blend towards the fixed grid (``nn/local_frame.py``).

        Args:
            x: [N, (L+1)^2, C]; gates: [N, n_sp] weights of the spherical experts;
            batch: [N] system index (grid rotation in training) or None.
        Returns:
            [N, (L+1)^2, C]; [N, 1, C] with ``scalar_output``.
        """
        if self.grid_frame == "global":
            y = self.on_grid(x, gates, self._global_rotation(x, batch))
        else:
            y = self._on_local_grids(x, gates, batch)
        if not self.invariant_scalars:
            return y
        scalars = self.scalar_branch(x.select(1, 0))  # invariant: unaffected by the rotation
        return torch.cat([scalars.unsqueeze(1), y], dim=1)

    def on_grid(
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
        y = self.on_grid(x, gates, rotation)
        band = ((weights > 0) & (weights < 1)).nonzero().squeeze(1)
        if band.numel() == 0:
            return y
        with full_precision(x.device):
            fixed = None if turns is None else self.wigner(turns.index_select(0, band))
        y_fixed = self.on_grid(x.index_select(0, band), gates.index_select(0, band), fixed)
        weight = weights.index_select(0, band).to(y.dtype)[:, None, None]
        blend = weight * y.index_select(0, band) + (1.0 - weight) * y_fixed
        return y.index_copy(0, band, blend)
