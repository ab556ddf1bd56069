"""Spherical Fourier transforms between steerable and grid features (design §2).

Steerable features ``x`` have shape ``[N, (L+1)^2, C]`` with coefficient (l, m) in row
``l^2 + l + m`` (e3nn order, the layout of fairchem's ``SO3_Embedding``). Grid features ``f``
have shape ``[N, S, C]``: the spherical function of each channel sampled at S points.

- forward (Eq. 8):  ``f = Y_P x`` with ``Y_P[s, k] = Y_k(p_s)``, e3nn's real spherical harmonics
  with ``normalization='integral'`` (orthonormal on the sphere). They satisfy
  ``Y(R p) = D(R) Y(p)`` with e3nn's Wigner-D matrices, the convention fairchem uses.
- inverse (Eq. 12): the quadrature-weighted least-squares projection
  ``x = (Y_P^T W Y_P)^{-1} Y_P^T W f``, W = diag(quadrature weights).

Why least squares rather than the plain quadrature ``x = Y_P^T W f`` (or the reference code's
column-normalised ``T^T f``): for an exact rule (Lebedev of degree >= 2L) the Gram matrix
``Y_P^T W Y_P`` is the identity and both agree; for a near-uniform set such as the Fibonacci
lattice the Gram matrix is only close to the identity, and the correction makes
``inverse(forward(x)) == x`` exact (to float64 round-off) whenever the point set resolves
degree L, so the steerable -> grid -> steerable round trip loses nothing.

Mixed precision: under ``torch.autocast`` (fairchem's ``--amp``) these einsums would run in
float16/bfloat16 (8 bits of mantissa for bfloat16: about 0.4 % error per product), which
spoils the lossless round trip and the equivariance of the grid branch. Under autocast both
transforms therefore run with autocast disabled, in float32 (``full_precision``), and return
float32, as autocast does for the ops on its float32 list; outside autocast nothing changes.
"""

from __future__ import annotations

from est_fairchem.errors import InputError
import numpy as np
import torch
from torch import nn

from est_fairchem.sphere.constants import memoized
from est_fairchem.sphere.points import SpherePoints
from est_fairchem.sphere.precision import full_precision, full_precision_dtype

MAX_GRAM_CONDITION = 1e8
"""The largest condition number of ``Y_P^T W Y_P`` a point set may have (design §2.5, measured:
every point set a config can ask for stays below 1e2, sets that cannot resolve degree L above
1e15; at 1e8 the float64 solve still keeps about 8 digits)."""


def num_coefficients(lmax: int) -> int:
    """(L+1)^2, the number of real SH coefficients of degrees 0..L."""
    return (lmax + 1) ** 2


def min_sphere_points(lmax: int, sampling: str = "fibonacci") -> int:
    """The sampling bound for degree ``lmax``: max((2L)^2, (L+1)^2) points.

    (2L)^2 is the Nyquist count the paper cites for a lossless transform; (L+1)^2 is the
    least count for which the transform is invertible at all (it dominates only for L <= 1).
    A latitude-longitude grid needs 2L+1 longitudes to resolve orders -L..L: (2L+1)^2 points.
    """
    if sampling == "latlong":
        return (2 * lmax + 1) ** 2
    return max((2 * lmax) ** 2, num_coefficients(lmax))


def real_spherical_harmonics(lmax: int, xyz: torch.Tensor) -> torch.Tensor:
    """e3nn real SH of degrees 0..lmax at unit vectors ``xyz`` [..., 3] -> [..., (L+1)^2]."""
    from e3nn import o3

    return o3.spherical_harmonics(
        list(range(lmax + 1)), xyz, normalize=True, normalization="integral"
    )


class SphericalTransform(nn.Module):
    """Fixed forward / inverse transform matrices for one point set and one lmax.

    The matrices are computed once in float64 and kept as non-persistent float64 buffers (a
    better point set never breaks an old checkpoint); they are cast to the input's dtype at use.
    """

    def __init__(self, lmax: int, points: SpherePoints) -> None:
        super().__init__()
        self.lmax = lmax
        self.num_points = points.num_points
        if self.num_points < num_coefficients(lmax):
            raise InputError(
                f"num_points={self.num_points} is below (lmax+1)^2={num_coefficients(lmax)}: "
                "the transform cannot be inverted"
            )
        xyz = torch.from_numpy(np.array(points.xyz, dtype=np.float64))
        weights = torch.from_numpy(np.array(points.weights, dtype=np.float64))
        to_grid = real_spherical_harmonics(lmax, xyz)  # [S, K]
        gram = to_grid.T @ (weights[:, None] * to_grid)  # [K, K]
        if torch.linalg.cond(gram) > MAX_GRAM_CONDITION:
            raise InputError(
                f"this set of {self.num_points} points cannot resolve degrees up to "
                f"lmax={lmax} (singular transform); use more points"
            )
        from_grid = torch.linalg.solve(gram, to_grid.T * weights[None, :])  # [K, S]
        self.register_buffer("to_grid_mat", to_grid, persistent=False)
        self.register_buffer("from_grid_mat", from_grid, persistent=False)
        self.register_buffer("points", xyz, persistent=False)
        self.register_buffer("weights", weights, persistent=False)
        self.uniform_weights = points.is_uniform

    def _matrix(self, name: str, dtype: torch.dtype, first_row: int = 0) -> torch.Tensor:
        """Buffer ``name`` (rows ``first_row:``) in ``dtype``, kept between calls."""
        source = getattr(self, name)
        return memoized(self, f"{name}[{first_row}:]", (source,), dtype,
                        lambda: source[first_row:].to(dtype).contiguous())

    def to_grid(self, x: torch.Tensor, rotation: torch.Tensor | None = None) -> torch.Tensor:
        """[N, K, C] steerable -> [N, S, C] grid, in float32 under autocast.

        ``rotation``: per-row Wigner-D [N, K, K] without gradient, or None. Given, each row is
        sampled after turning it by its D (``Y_P D x``), as one batched product with the
        per-row matrices ``Y_P D`` [N, S, K].
        """
        dtype = full_precision_dtype(x)
        with full_precision(x.device):
            matrix = self._matrix("to_grid_mat", dtype)  # [S, K]
            if rotation is not None:
                matrix = matrix @ rotation.to(dtype)  # [N, S, K]
            return torch.matmul(matrix, x.to(dtype))

    def from_grid(
        self, f: torch.Tensor, rotation: torch.Tensor | None = None,
        without_degree_zero: bool = False, degree_zero_only: bool = False,
    ) -> torch.Tensor:
        """[N, S, C] grid -> [N, K, C] steerable, in float32 under autocast.

        ``rotation``: per-row Wigner-D [N, K, K] without gradient, or None. Given, the result
        is turned back by ``D^T`` (undoing :meth:`to_grid`'s turn), as one batched product
        with the per-row matrices ``D^T Y_P^+`` [N, K, S]. ``without_degree_zero``: leave out
        row 0 (the degree-0 coefficient): [N, K - 1, C]. ``degree_zero_only``: only row 0,
        [N, 1, C] (unchanged by any turn, so ``rotation`` is not needed).
        """
        dtype = full_precision_dtype(f)
        if degree_zero_only:
            with full_precision(f.device):
                return torch.matmul(self._matrix("from_grid_mat", dtype, 0).narrow(0, 0, 1),
                                    f.to(dtype))
        first = 1 if without_degree_zero else 0
        with full_precision(f.device):
            matrix = self._matrix("from_grid_mat", dtype, first)  # [K - first, S]
            if rotation is not None:
                # D is block diagonal with D_0 = 1, so rows 1: of D^T M take only rows 1: of M
                rows = matrix.shape[0]
                turn = rotation.to(dtype).narrow(1, first, rows).narrow(2, first, rows)
                matrix = turn.transpose(1, 2) @ matrix  # [N, K - first, S]
            return torch.matmul(matrix, f.to(dtype))

    def log_weights(self, dtype: torch.dtype) -> torch.Tensor | None:
        """[S] log quadrature weights for the attention logits, or None for a uniform set."""
        if self.uniform_weights:
            return None
        scale = self.num_points / (4.0 * np.pi)
        return memoized(self, "log_weights", (self.weights,), dtype,
                        lambda: torch.log(self.weights * scale).to(dtype))
