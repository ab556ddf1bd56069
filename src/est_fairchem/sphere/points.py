"""Point sets on the unit sphere S^2 with quadrature weights.

Every point set is returned as a :class:`SpherePoints` of float64 numpy arrays:
``xyz`` ``[S, 3]`` unit vectors and ``weights`` ``[S]`` summing to 4*pi (the area of
the sphere), so that ``sum_s weights[s] * f(xyz[s])`` approximates ``int_{S^2} f``.

Point sets (design §3):

- ``fibonacci``: the half-offset Fibonacci lattice z_s = 1 - (2s-1)/S, phi_s = 2*pi*s/golden_ratio
  (s = 1..S). This is the intended form of the paper's Eq. (11) (as printed its z_s leaves [-1, 1]);
  it is preferred over the pole-inclusive variant of the reference code because it measured 1.5-5x
  lower equivariance error (design §3.1, §13.1). Optionally refined by the repulsion
  ("molecular-dynamics-like") iteration of design §3.2, computed once and cached. Weights are
  uniform, 4*pi/S.
- ``lebedev``: Lebedev rules from ``scipy.integrate.lebedev_rule`` (exact for polynomials up to
  the rule's degree); only the point counts of the published rules exist.
- ``latlong``: EquiformerV2's (e3nn's) latitude-longitude grid, res x res points with
  beta_i = (i + 1/2) pi / res, alpha_j = 2 pi j / res, weighted by the exact area of each cell.
  Dense at the poles; kept as the baseline the paper compares against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from est_fairchem.errors import InputError

SAMPLINGS = ("fibonacci", "lebedev", "latlong")
_LEBEDEV_MAX_DEGREE = 131  # the highest order scipy ships (design §3.3)


@dataclass(frozen=True)
class SpherePoints:
    """Unit vectors ``xyz`` [S, 3] and quadrature weights ``weights`` [S] (sum 4*pi)."""

    xyz: np.ndarray
    weights: np.ndarray

    @property
    def num_points(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def is_uniform(self) -> bool:
        # equal to float64 round-off: Fibonacci's 4 pi / S (design §4.3: no log-weights then)
        return bool(np.allclose(self.weights, self.weights.mean(), rtol=1e-12, atol=0.0))


def fibonacci_lattice(num_points: int) -> np.ndarray:
    """Half-offset Fibonacci lattice, [S, 3] unit vectors (polar axis z)."""
    if num_points < 1:
        raise InputError(f"num_points must be >= 1, got {num_points}")
    s = np.arange(1, num_points + 1, dtype=np.float64)
    z = 1.0 - (2.0 * s - 1.0) / num_points
    golden_ratio = (1.0 + math.sqrt(5.0)) / 2.0
    phi = 2.0 * math.pi * s / golden_ratio
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def repulsion_refine(
    xyz: np.ndarray, steps: int = 500, step_size: float = 0.01, strength: float = 0.01
) -> np.ndarray:
    """Spread points by inverse-square repulsion confined to the sphere (design §3.2).

    Each step moves every point by ``step_size * F_i`` with
    ``F_i = strength * sum_j (p_i - p_j) / |p_i - p_j|^3`` and projects back onto the sphere.

    Args:
        xyz: [S, 3] unit vectors.
    Returns:
        [S, 3] refined unit vectors (a new array).
    """
    points = np.array(xyz, dtype=np.float64, copy=True)
    for _ in range(steps):
        diff = points[:, None, :] - points[None, :, :]  # [S, S, 3]
        dist = np.linalg.norm(diff, axis=-1)
        np.fill_diagonal(dist, np.inf)
        dist = np.where(dist < 1e-10, np.inf, dist)  # coincident: no direction (design §3.2)
        force = strength * (diff / dist[..., None] ** 3).sum(axis=1)
        points = points + step_size * force
        points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points


def _lebedev_rule(degree: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.integrate import lebedev_rule  # scipy >= 1.15

    x, w = lebedev_rule(degree)
    return np.asarray(x, dtype=np.float64).T, np.asarray(w, dtype=np.float64)


@lru_cache(maxsize=1)
def lebedev_point_counts() -> dict[int, int]:
    """Map of available Lebedev point count -> rule degree.

    Rules with a non-positive weight (the 74-point rule of degree 13 has negative ones) are
    left out: the attention adds log-weights to its logits.
    """
    counts: dict[int, int] = {}
    for degree in range(3, _LEBEDEV_MAX_DEGREE + 1, 2):
        try:
            xyz, weights = _lebedev_rule(degree)
        except (ValueError, NotImplementedError):
            continue
        if np.all(weights > 0):
            counts.setdefault(xyz.shape[0], degree)
    return counts


def latlong_grid(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """e3nn / EquiformerV2 latitude-longitude grid: ([res*res, 3] points, [res*res] cell areas).

    Uses e3nn's angle convention (y is the polar axis): p = (sin b sin a, cos b, sin b cos a).
    """
    beta = (np.arange(resolution) + 0.5) * math.pi / resolution
    alpha = np.arange(resolution) * 2.0 * math.pi / resolution
    b, a = np.meshgrid(beta, alpha, indexing="ij")
    xyz = np.stack([np.sin(b) * np.sin(a), np.cos(b), np.sin(b) * np.cos(a)], axis=-1)
    half = 0.5 * math.pi / resolution
    band = np.cos(beta - half) - np.cos(beta + half)  # area of the band / (2 pi)
    weights = np.repeat(band * 2.0 * math.pi / resolution, resolution)
    return xyz.reshape(-1, 3), weights


@lru_cache(maxsize=64)
def sphere_points(sampling: str, num_points: int, repulsion_steps: int = 0) -> SpherePoints:
    """Build (once, then cached) the point set ``sampling`` with ``num_points`` points.

    Args:
        sampling: one of ``SAMPLINGS``.
        num_points: S. ``latlong`` needs a perfect square, ``lebedev`` a published rule size.
        repulsion_steps: repulsion iterations for ``fibonacci`` (0 = plain lattice).
    """
    if sampling == "fibonacci":
        xyz = fibonacci_lattice(num_points)
        if repulsion_steps > 0:
            xyz = repulsion_refine(xyz, steps=repulsion_steps)
        weights = np.full(num_points, 4.0 * math.pi / num_points)
    elif sampling == "lebedev":
        counts = lebedev_point_counts()
        if num_points not in counts:
            raise InputError(
                f"sampling 'lebedev' has no rule with num_points={num_points}; "
                f"available counts: {sorted(counts)}"
            )
        xyz, weights = _lebedev_rule(counts[num_points])
    elif sampling == "latlong":
        resolution = math.isqrt(num_points)
        if resolution * resolution != num_points:
            raise InputError(
                f"sampling 'latlong' needs num_points = res*res (a square), got {num_points}"
            )
        xyz, weights = latlong_grid(resolution)
    else:
        raise InputError(f"unknown sampling {sampling!r}; expected one of {list(SAMPLINGS)}")
    weights = weights * (4.0 * math.pi / weights.sum())
    xyz.setflags(write=False)
    weights.setflags(write=False)
    return SpherePoints(xyz=xyz, weights=weights)
