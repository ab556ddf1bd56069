"""Random rotations of the sphere grid (spec §3.4), as block-diagonal Wigner-D matrices."""

from __future__ import annotations

import torch


def block_wigner_d(lmax: int, rotations: torch.Tensor) -> torch.Tensor:
    """Block-diagonal real Wigner-D of degrees 0..lmax for rotation matrices [B, 3, 3].

    In e3nn's convention, so that ``Y(R p) = D(R) Y(p)`` for e3nn's spherical harmonics.
    Returns [B, (L+1)^2, (L+1)^2].
    """
    from e3nn import o3

    irreps = o3.Irreps([(1, (l, 1)) for l in range(lmax + 1)])
    return irreps.D_from_matrix(rotations)


def random_wigner_d(
    lmax: int, num: int, dtype: torch.dtype, device: torch.device | str
) -> torch.Tensor:
    """Wigner-D matrices of ``num`` Haar-random rotations: [num, (L+1)^2, (L+1)^2]."""
    from e3nn import o3

    rotations = o3.rand_matrix(num, dtype=torch.float64).to(device)
    return block_wigner_d(lmax, rotations).to(dtype)
