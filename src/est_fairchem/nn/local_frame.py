"""Per-node frames from steerable features, for an exactly equivariant spherical branch.

The EST spherical branch samples each node's features on a fixed grid. Because the pointwise
nonlinearities (attention, MLP) create degrees the grid cannot resolve, rotating the input
does not exactly rotate the output (spec §14, §16): the error falls only slowly with the
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
  equivariant up to its discretisation error (spec §14), continuous in the positions, and the
  same for symmetry-equivalent atoms up to that error, whatever the round-off.
- 0 < w < 1 (a band one decade wide): the blend; its equivariance error is (1 - w) times the
  grid's. These nodes cost a second evaluation of the branch.
F and w are computed without gradient: were the branch exactly equivariant, y would depend on
neither, so the only gradient dropped is that of the discretisation error with respect to the
frame and the blend.

Wigner-D matrices are computed from F degree by degree, coupling ``D_(l-1)`` with ``D_1``
through e3nn's Wigner-3j symbols: a polynomial in F (smooth, no Euler-angle singularities), in
e3nn's convention by construction.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from est_fairchem.sphere.constants import memoized
from est_fairchem.sphere.transform import num_coefficients

# Rows of the degree-1 coefficients holding x, y, z (e3nn: Y_1(p) is proportional to p).
_DEGREE_ONE_XYZ_ROWS = (1, 2, 3)

# The condition number above which a frame is used alone (see the module docstring). Round-off
# leaves rho near 1e-8 at symmetric sites in float32 (1e-7 from fairchem's float32 Wigner
# tables in float64 runs); nodes without symmetry measured rho of 1e-2 to 1 (random weights
# and trained demo models).
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
            raise ValueError(f"threshold={threshold}: expected a number in (0, 1)")
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


class WignerFromRotation(nn.Module):
    """Block-diagonal real Wigner-D [N, (L+1)^2, (L+1)^2] of rotations [N, 3, 3], in e3nn's
    convention (``Y(R p) = D(R) Y(p)``), differentiable and free of angle singularities.

    Built degree by degree from the rotation matrix itself: ``D_1`` is R (e3nn's degree-1
    basis is x, y, z), and ``D_l = C_l^T (D_(l-1) kron D_1) C_l`` with ``C_l`` e3nn's Wigner-3j symbol
    (l-1, 1, l) scaled to orthonormal columns (it intertwines the product with degree l). A
    polynomial in R, exact to round-off. The blocks are placed by one gather from their
    concatenation (a fixed index), not by one assignment per block: few operations to
    dispatch (evaluating the harmonics at probe points took about 170, each a GPU launch).

    Args:
        lmax: L.
    """

    def __init__(self, lmax: int) -> None:
        super().__init__()
        from e3nn import o3

        self.lmax = lmax
        for degree in range(2, lmax + 1):
            coupling = o3.wigner_3j(degree - 1, 1, degree, dtype=torch.float64)
            coupling = coupling.reshape(-1, 2 * degree + 1) * (2 * degree + 1) ** 0.5
            self.register_buffer(f"coupling_{degree}", coupling, persistent=False)
        self.register_buffer("layout", _block_layout(lmax), persistent=False)

    def _couplings(self, degree: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """C_l [3(2l-1), 2l+1] and C_l^T in ``dtype``, kept between calls."""
        source = getattr(self, f"coupling_{degree}")
        cast = memoized(self, f"coupling_{degree}", (source,), dtype, lambda: source.to(dtype))
        transposed = memoized(self, f"coupling_{degree}^T", (source,), dtype,
                              lambda: source.T.to(dtype).contiguous())
        return cast, transposed

    def forward(self, rotations: torch.Tensor) -> torch.Tensor:
        """[N, 3, 3] -> [N, K, K]."""
        n = rotations.shape[0]
        blocks = [rotations.new_ones(n, 1)]  # D_0, then each D_l flattened
        if self.lmax >= 1:
            blocks.append(rotations.reshape(n, 9))
        block, factor = rotations, rotations.reshape(n, 1, 3, 1, 3)
        for degree in range(2, self.lmax + 1):
            coupling, coupling_t = self._couplings(degree, rotations.dtype)
            side = block.shape[-1]  # D_(l-1) kron R: [N, 3(2l-1), 3(2l-1)], flattened rows
            width = 3 * side
            product = (block.reshape(n, side, 1, side, 1) * factor).reshape(n * width, width)
            block = coupling_t @ (product @ coupling).view(n, width, 2 * degree + 1)
            blocks.append(block.reshape(n, -1))
        blocks.append(rotations.new_zeros(n, 1))  # the off-block entries
        size = num_coefficients(self.lmax)
        return torch.cat(blocks, dim=1).index_select(1, self.layout).view(n, size, size)


def _block_layout(lmax: int) -> torch.Tensor:
    """[K * K] index into the concatenated flattened blocks D_0..D_L (then one zero) placing
    each entry of the block-diagonal matrix [K, K] (row-major); off-block entries take the zero."""
    size = num_coefficients(lmax)
    total = sum((2 * degree + 1) ** 2 for degree in range(lmax + 1))
    layout = torch.full((size, size), total, dtype=torch.long)
    offset = 0
    for degree in range(lmax + 1):
        width, first = 2 * degree + 1, degree**2
        layout[first : first + width, first : first + width] = (
            offset + torch.arange(width * width).view(width, width))
        offset += width * width
    return layout.view(-1)
