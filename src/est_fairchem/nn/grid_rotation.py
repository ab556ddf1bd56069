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


def random_system_matrices(
    systems: torch.Tensor | None, num_rows: int, dtype: torch.dtype, device: torch.device | str
) -> torch.Tensor:
    """One Haar-random 3x3 rotation per system, gathered per row: [num_rows, 3, 3].

    ``systems`` [num_rows] is the system of each row; None: one rotation for all.
    """
    from e3nn import o3

    num = 1 if systems is None or systems.numel() == 0 else int(systems.max()) + 1
    rotations = o3.rand_matrix(num, dtype=torch.float64).to(device=device, dtype=dtype)
    return rotations[systems] if systems is not None else rotations.expand(num_rows, -1, -1)


def random_system_rotations(
    lmax: int, systems: torch.Tensor | None, num_rows: int, dtype: torch.dtype,
    device: torch.device | str,
) -> torch.Tensor:
    """One Haar-random Wigner-D per system, gathered per row: [num_rows, (L+1)^2, (L+1)^2].

    ``systems`` [num_rows] is the system of each row (node or edge); None: one rotation for all.
    """
    num = 1 if systems is None or systems.numel() == 0 else int(systems.max()) + 1
    wigner = random_wigner_d(lmax, num, dtype, device)
    return wigner[systems] if systems is not None else wigner.expand(num_rows, -1, -1)


def rotate_rows(rotation: torch.Tensor, x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """``D x`` (or ``D^T x`` with ``inverse``) per row of [R, (L+1)^2, C], in full precision
    (float32 at least, autocast off); ``rotation`` [R, (L+1)^2, (L+1)^2]."""
    from est_fairchem.sphere.transform import full_precision, full_precision_dtype

    dtype = full_precision_dtype(x)
    with full_precision(x.device):
        pattern = "rjk,rjc->rkc" if inverse else "rkj,rjc->rkc"
        return torch.einsum(pattern, rotation.to(dtype), x.to(dtype))
