"""Per-node frames from steerable features, for an exactly equivariant spherical branch.

The EST spherical branch samples each node's features on a fixed grid. Because the pointwise
nonlinearities (attention, MLP) create degrees the grid cannot resolve, rotating the input
does not exactly rotate the output (spec §14, §16): the error falls only slowly with the
number of points. Sampling in a frame that turns *with* the node's features removes the error
altogether, at any point count:

    F = rows (e1, e2, e3), built by Gram-Schmidt from two fixed combinations a, b of the
        node's degree-1 channels (so rotating the input by Q turns F into F Q^T);
    x_local = D(F) x,   y = D(F)^T branch(x_local).

``x_local`` is rotation invariant, so ``y`` rotates exactly as the input does. The frame is
computed without gradient: were the branch exactly equivariant, ``y`` would not depend on F
at all, so the only gradient dropped is that of the discretisation error with respect to the
frame's orientation; dropping it also keeps gradients bounded where a is nearly zero. A node
whose degree-1 features vanish, or are all parallel, has no frame (its environment is
symmetric): fixed vectors of size ``eps`` added to a and b give such nodes a defined frame,
at the cost of an equivariance error of about eps / |a| (measured: 0.5 eps / |a|).

Wigner-D matrices are computed from F degree by degree, coupling ``D_(l-1)`` with ``D_1``
through e3nn's Wigner-3j symbols: a polynomial in F (smooth, no Euler-angle singularities), in
e3nn's convention by construction.
"""

from __future__ import annotations

import torch
from torch import nn

from est_fairchem.sphere.constants import memoized
from est_fairchem.sphere.transform import num_coefficients

# Rows of the degree-1 coefficients holding x, y, z (e3nn: Y_1(p) is proportional to p).
_DEGREE_ONE_XYZ_ROWS = (1, 2, 3)


class LocalFrame(nn.Module):
    """Rotation matrices [N, 3, 3] (rows e1, e2, e3) from node features [N, (L+1)^2, C].

    a is the sum of the C degree-1 channels, b their sum weighted by a ramp from -1 to 1
    (fixed weights: no parameters, so checkpoints are unaffected).

    Args:
        channels: C.
        eps: size of the fixed vectors added to a and b (see the module docstring).
    """

    def __init__(self, channels: int, eps: float = 1e-9) -> None:
        super().__init__()
        self.eps = eps
        weights = torch.stack([torch.ones(channels), torch.linspace(-1.0, 1.0, channels)], dim=1)
        self.register_buffer("weights", weights, persistent=False)  # [C, 2]
        # The fixed vectors eps z and eps x added to a and b: columns of [3 (x, y, z), 2 (a, b)].
        fallback = eps * torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]).T
        self.register_buffer("fallback", fallback, persistent=False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, (L+1)^2, C] -> [N, 3, 3] proper rotations whose rows turn with the input."""
        first, count = _DEGREE_ONE_XYZ_ROWS[0], len(_DEGREE_ONE_XYZ_ROWS)
        vectors = x.narrow(1, first, count) @ self.weights.to(x.dtype) + self.fallback.to(x.dtype)
        a, b = vectors.unbind(-1)  # [N, 3] each (x, y, z)
        e1 = a / torch.linalg.vector_norm(a, dim=-1, keepdim=True).clamp_min(self.eps**2)
        b = b - (b * e1).sum(-1, keepdim=True) * e1
        e2 = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True).clamp_min(self.eps**2)
        e3 = torch.linalg.cross(e1, e2, dim=-1)
        return torch.stack([e1, e2, e3], dim=1)


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
