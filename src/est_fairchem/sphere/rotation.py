"""Random rotations of the sphere grid (design §3.5), as block-diagonal Wigner-D matrices.

Drawn on the features' device without reading anything back to the host: a training step on
a GPU keeps its kernel queue full (no ``int(tensor)`` or CPU round trip per layer).
"""

from __future__ import annotations

from functools import lru_cache

import torch

from est_fairchem.sphere.wigner import wigner_d


@lru_cache(maxsize=None)
def _quaternion_basis(dtype: torch.dtype, device: str) -> torch.Tensor:
    """T [4, 4, 3, 3] with ``R_ab = sum_ij q_i q_j T_ijab / |q|^2`` for q = (w, v), from
    ``R = (w^2 - v.v) I + 2 v v^T + 2 w [v]_x`` with ``[v]_x[a, b] = -eps_abk v_k``."""
    t = torch.zeros(4, 4, 3, 3, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    t[0, 0] = eye
    for k in range(3):
        t[1 + k, 1 + k] -= eye
    for a in range(3):
        for b in range(3):
            t[1 + a, 1 + b, a, b] += 1.0  # v_a v_b + v_b v_a = 2 v_a v_b
            t[1 + b, 1 + a, a, b] += 1.0
            for k in range(3):
                levi_civita = (a - b) * (b - k) * (k - a) / 2
                t[0, 1 + k, a, b] -= levi_civita  # w v_k + v_k w = 2 w v_k
                t[1 + k, 0, a, b] -= levi_civita
    return t.to(dtype=dtype, device=device)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [B, 3, 3] of quaternions ``q = (w, x, y, z)`` [B, 4], of any nonzero
    norm: a fixed linear map of ``q q^T``, divided by ``|q|^2``.

    The rotation e3nn's ``o3.quaternion_to_matrix`` gives for unit quaternions; kept because
    e3nn's (via Euler angles) takes 4x the operators, unit quaternions only, and loses float32
    precision near the identity (measured, design §3.5).
    """
    outer = q[:, :, None] * q[:, None, :]  # [B, 4, 4]
    basis = _quaternion_basis(q.dtype, str(q.device)).view(16, 9)
    return (outer.reshape(-1, 16) @ basis).view(-1, 3, 3) / (q * q).sum(-1)[:, None, None]


def random_rotation_matrices(num: int, dtype: torch.dtype, device: torch.device | str,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """``num`` Haar-random 3x3 rotations drawn on ``device`` (from ``generator`` if given):
    [num, 3, 3]. Normalised Gaussian 4-vectors are uniform unit quaternions, whose rotations
    are Haar distributed on SO(3) (design §3.5)."""
    q = torch.randn(num, 4, dtype=dtype, device=device, generator=generator)
    return quaternion_to_matrix(q)


def _per_system_rotations(
    systems: torch.Tensor | None, num_rows: int, max_systems: int | None, dtype: torch.dtype,
    device: torch.device | str,
) -> torch.Tensor:
    """[M, 3, 3] rotations to gather with :func:`_gather_rows` (M = 1 when ``systems`` is None)."""
    num = 1 if systems is None else max(max_systems or num_rows, 1)
    return random_rotation_matrices(num, dtype, device)


def _gather_rows(per_system: torch.Tensor, systems: torch.Tensor | None, num_rows: int) -> torch.Tensor:
    return per_system[systems] if systems is not None else per_system.expand(num_rows, -1, -1)


def random_system_matrices(
    systems: torch.Tensor | None, num_rows: int, dtype: torch.dtype, device: torch.device | str,
    max_systems: int | None = None,
) -> torch.Tensor:
    """One Haar-random 3x3 rotation per system, gathered per row: [num_rows, 3, 3].

    Args:
        systems: [num_rows] system of each row; None: one rotation for all rows.
        max_systems: a bound on the number of systems (any int above ``systems.max()``);
            default ``num_rows``, which holds for node rows (every system has a node). Rows
            of edges pass the number of nodes. That many rotations are drawn, so the count
            of systems is never read back from the device.
    """
    rotations = _per_system_rotations(systems, num_rows, max_systems, dtype, device)
    return _gather_rows(rotations, systems, num_rows)


def random_system_rotations(
    lmax: int, systems: torch.Tensor | None, num_rows: int, dtype: torch.dtype,
    device: torch.device | str, max_systems: int | None = None,
) -> torch.Tensor:
    """One Haar-random Wigner-D per system, gathered per row: [num_rows, (L+1)^2, (L+1)^2].

    ``systems``, ``max_systems`` as in :func:`random_system_matrices`. The Wigner-D matrices
    are computed in float64 on ``device`` (:func:`~est_fairchem.sphere.wigner.wigner_d`, exact
    to round-off) and cast to ``dtype``.
    """
    device = torch.device(device)
    rotations = _per_system_rotations(systems, num_rows, max_systems, torch.float64, device)
    wigner = wigner_d(lmax, rotations).to(dtype)
    return _gather_rows(wigner, systems, num_rows)


def rotate_rows(rotation: torch.Tensor, x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """``D x`` (or ``D^T x`` with ``inverse``) per row of [R, (L+1)^2, C], in full precision
    (float32 at least, autocast off); ``rotation`` [R, (L+1)^2, (L+1)^2]."""
    from est_fairchem.sphere.precision import full_precision, full_precision_dtype

    dtype = full_precision_dtype(x)
    with full_precision(x.device):
        pattern = "rjk,rjc->rkc" if inverse else "rkj,rjc->rkc"
        return torch.einsum(pattern, rotation.to(dtype), x.to(dtype))
