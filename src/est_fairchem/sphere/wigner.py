"""Wigner-D matrices of rotation matrices, degree by degree: the package's one Wigner-D route
(the training path's grid rotations, the local frame, the equivariance checks, the benchmarks).

``D_l`` is built by coupling ``D_(l-1)`` with ``D_1`` through e3nn's Wigner-3j symbols: a
polynomial in the rotation matrix (smooth, no Euler-angle singularities), in e3nn's convention
by construction (``Y(R p) = D(R) Y(p)``).

Kept over e3nn's ``Irreps.D_from_matrix`` (fairchem's route too), which is exact only under a
float64 default dtype, runs on the CPU and takes 20x the operators (measured, design §3.5).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from est_fairchem.sphere.constants import memoized
from est_fairchem.sphere.transform import num_coefficients


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


@lru_cache(maxsize=None)
def _wigner_on(lmax: int, device: str) -> WignerFromRotation:
    return WignerFromRotation(lmax).to(device)


def wigner_d(lmax: int, rotations: torch.Tensor) -> torch.Tensor:
    """Block-diagonal real Wigner-D of degrees 0..lmax, ``Y(R p) = D(R) Y(p)`` for e3nn's
    harmonics: [B, 3, 3] rotations -> [B, (L+1)^2, (L+1)^2], in their dtype and on their device
    (one :class:`WignerFromRotation` kept per degree and device)."""
    return _wigner_on(lmax, str(rotations.device))(rotations)


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
