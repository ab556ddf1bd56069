"""Per-node frames from steerable features, for an exactly equivariant spherical branch.

The EST spherical branch samples each node's features on a fixed grid. Because the pointwise
nonlinearities (attention, MLP) create degrees the grid cannot resolve, rotating the input
does not exactly rotate the output (design §4.5, §13): the error falls only slowly with the
number of points. Sampling in a frame that turns *with* the node's features removes the error
altogether, at any point count:

    F = rows (e1, e2, e3), built by Gram-Schmidt from two fixed combinations a, b of the
        node's degree-1 channels (so rotating the input by Q turns F into F Q^T);
    x_local = D(F) x,   y_local = D(F)^T branch(x_local).

``x_local`` is rotation invariant, so ``y_local`` rotates exactly as the input does.

Where the frame is ill defined. At a symmetric site (an atom on a symmetry axis of an ideal
slab, a perfect crystal, a linear molecule) a -> 0 or b -> parallel to a, and F turns abruptly
with the direction of a vanishing displacement: ``y_local`` would be discontinuous there (by
the grid's error), and round-off, not the geometry, would choose F. So each node also gets a
weight w in [0, 1] from two rotation-invariant condition numbers,

    rho_a = |a| / |x|,   rho_b = |b - (b.e1) e1| / |x|      (|x|: the node's whole feature norm),
    w = s(rho_a) s(rho_b),  s: 0 below t/10, 1 above t, a C^2 smootherstep in log(rho) between,

and the branch's output is the blend

    y = w y_local + (1 - w) y_global,   y_global = D(R)^T branch(D(R) x),

with R the fixed grid (the identity in eval; the system's random turn in training), which
depends on no axis of the node. F is smooth wherever w > 0 (there a != 0 and b is not parallel
to a), so y is continuous everywhere, and smooth in the features away from the band's edges.

What is exact and what is approximate:
- w = 1 (rho_a, rho_b >= t: every node of a structure without symmetry, in practice): exactly
  equivariant at any point count (to round-off).
- w = 0 (rho below t/10: symmetric sites, up to round-off): the paper's fixed grid,
  equivariant up to its discretisation error (design §13.1), continuous in the positions, and the
  same for symmetry-equivalent atoms up to that error, whatever the round-off.
- 0 < w < 1 (a band one decade wide): the blend; its equivariance error is (1 - w) times the
  grid's. These nodes cost a second evaluation of the branch.
F and w are computed without gradient: were the branch exactly equivariant, y would depend on
neither, so the only gradient dropped is that of the discretisation error with respect to the
frame and the blend.

Wigner-D matrices of F come from :class:`est_fairchem.sphere.wigner.WignerFromRotation`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from est_fairchem.errors import InputError


# Rows of the degree-1 coefficients holding x, y, z (e3nn: Y_1(p) is proportional to p).
_DEGREE_ONE_XYZ_ROWS = (1, 2, 3)

# The condition number above which a frame is used alone (see the module docstring). Round-off
# leaves rho near 1e-8 at symmetric sites in float32 (1e-7 from fairchem's float32 Wigner
# tables in float64 runs); nodes without symmetry measured rho of 1e-2 to 1 (random weights
# and trained demo models). design §5.6.
FRAME_THRESHOLD = 1e-3


class LocalFrame(nn.Module):
    """Rotation matrices [N, 3, 3] (rows e1, e2, e3) and their weights [N] from node features
    [N, (L+1)^2, C].

    a is the sum of the C degree-1 channels, b their sum weighted by a ramp from -1 to 1
    (fixed weights: no parameters, so checkpoints are unaffected).

    Args:
        channels: C.
        threshold: t, the condition number above which the frame's weight is 1 (the weight
            is 0 below t / 10; see the module docstring).
    """

    def __init__(self, channels: int, threshold: float = FRAME_THRESHOLD) -> None:
        super().__init__()
        if not 0.0 < threshold < 1.0:
            raise InputError(f"threshold={threshold}: expected a number in (0, 1)")
        self.threshold = threshold
        weights = torch.stack([torch.ones(channels), torch.linspace(-1.0, 1.0, channels)], dim=1)
        self.register_buffer("weights", weights, persistent=False)  # [C, 2]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, (L+1)^2, C] -> (frames [N, 3, 3], proper rotations whose rows turn with the
        input; weights [N] in [0, 1], rotation invariant). Where the weight is 0 the frame is
        the identity (the fixed grid)."""
        first, count = _DEGREE_ONE_XYZ_ROWS[0], len(_DEGREE_ONE_XYZ_ROWS)
        vectors = x.narrow(1, first, count) @ self.weights.to(x.dtype)  # [N, 3, 2]
        a, b = vectors.unbind(-1)  # [N, 3] each (x, y, z)
        tiny = torch.finfo(x.dtype).tiny
        scale = torch.linalg.vector_norm(x.flatten(1), dim=1).clamp_min(tiny)  # [N]
        a_norm = torch.linalg.vector_norm(a, dim=-1)
        e1 = a / a_norm.clamp_min(tiny).unsqueeze(-1)
        b = b - (b * e1).sum(-1, keepdim=True) * e1
        b_norm = torch.linalg.vector_norm(b, dim=-1)
        e2 = b / b_norm.clamp_min(tiny).unsqueeze(-1)
        e3 = torch.linalg.cross(e1, e2, dim=-1)
        weight = self._smooth_step(a_norm / scale) * self._smooth_step(b_norm / scale)
        frames = torch.stack([e1, e2, e3], dim=1)
        identity = torch.eye(3, dtype=x.dtype, device=x.device)
        return torch.where((weight > 0)[:, None, None], frames, identity), weight

    def _smooth_step(self, rho: torch.Tensor) -> torch.Tensor:
        """0 for rho <= t/10, 1 for rho >= t, the smootherstep 6u^5 - 15u^4 + 10u^3 of
        u = log10(rho / t) + 1 between (C^2 continuous)."""
        u = (torch.log10(rho) - (math.log10(self.threshold) - 1.0)).clamp(0.0, 1.0)
        return u * u * u * (u * (6.0 * u - 15.0) + 10.0)
