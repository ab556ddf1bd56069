"""Point sets and spherical transforms (no fairchem needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from e3nn import o3

from est_fairchem.errors import InputError
from est_fairchem.sphere.wigner import wigner_d
from est_fairchem.sphere import (
    SphericalTransform,
    min_sphere_points,
    num_coefficients,
    real_spherical_harmonics,
    sphere_points,
)
from est_fairchem.sphere.points import SpherePoints, lebedev_point_counts
from est_fairchem.sphere.transform import MAX_GRAM_CONDITION


def _smallest_valid_count(sampling: str, bound: int) -> int:
    if sampling == "lebedev":
        return min(c for c in lebedev_point_counts() if c >= bound)
    if sampling == "latlong":
        return math.ceil(math.sqrt(bound)) ** 2
    return bound


def test_spherical_harmonics_follow_e3nn_wigner_d(float64):
    """Y(R p) = D(R) Y(p): the grid rotates with the steerable features."""
    rotation = o3.rand_matrix()
    points = torch.nn.functional.normalize(torch.randn(20, 3), dim=-1)
    wigner = wigner_d(4, rotation[None])[0]
    lhs = real_spherical_harmonics(4, points @ rotation.T)
    rhs = real_spherical_harmonics(4, points) @ wigner.T
    assert torch.allclose(lhs, rhs, atol=1e-12)


@pytest.mark.parametrize("sampling,repulsion", [("fibonacci", 0), ("fibonacci", 500),
                                                 ("lebedev", 0), ("latlong", 0)])
@pytest.mark.parametrize("lmax", [1, 2, 4])
def test_round_trip_is_identity_at_the_sampling_bound(float64, sampling, repulsion, lmax):
    count = _smallest_valid_count(sampling, min_sphere_points(lmax, sampling))
    transform = SphericalTransform(lmax, sphere_points(sampling, count, repulsion))
    x = torch.randn(7, num_coefficients(lmax), 5)
    grid = transform.to_grid(x)
    assert grid.shape == (7, count, 5)
    assert (transform.from_grid(grid) - x).abs().max() < 1e-10


@pytest.mark.parametrize("sampling,count", [("fibonacci", 90), ("lebedev", 110), ("latlong", 324)])
def test_weights_integrate_the_sphere(sampling, count):
    points = sphere_points(sampling, count, 0)
    assert points.xyz.shape == (count, 3)
    assert np.allclose(np.linalg.norm(points.xyz, axis=1), 1.0)
    assert math.isclose(points.weights.sum(), 4 * math.pi, rel_tol=1e-12)
    # the mean of z^2 over the sphere is 1/3
    integral = (points.weights * points.xyz[:, 2] ** 2).sum() / (4 * math.pi)
    assert abs(integral - 1 / 3) < 0.02


def test_lebedev_is_an_exact_quadrature(float64):
    """Degree 17 (110 points) integrates products of lmax-4 harmonics exactly: Gram = I."""
    points = sphere_points("lebedev", 110, 0)
    sh = real_spherical_harmonics(4, torch.from_numpy(np.array(points.xyz)))
    gram = sh.T @ (torch.from_numpy(np.array(points.weights))[:, None] * sh)
    assert torch.allclose(gram, torch.eye(25), atol=1e-12)


def _min_pair_distance(xyz: np.ndarray) -> float:
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def test_repulsion_spreads_the_fibonacci_lattice():
    plain = sphere_points("fibonacci", 90, 0).xyz
    refined = sphere_points("fibonacci", 90, 500).xyz
    assert np.allclose(np.linalg.norm(refined, axis=1), 1.0)
    assert _min_pair_distance(refined) > 1.05 * _min_pair_distance(plain)


def test_point_sets_are_built_once():
    assert sphere_points("fibonacci", 64, 500) is sphere_points("fibonacci", 64, 500)


def test_bad_point_counts_name_the_valid_ones():
    with pytest.raises(InputError, match="available counts: .*110"):
        sphere_points("lebedev", 100, 0)
    with pytest.raises(InputError, match="square"):
        sphere_points("latlong", 90, 0)
    with pytest.raises(InputError, match="unknown sampling 'icosahedron'"):
        sphere_points("icosahedron", 90, 0)


def test_sampling_bound():
    assert min_sphere_points(4) == 64
    assert min_sphere_points(1) == 4
    assert min_sphere_points(2) == 16
    assert min_sphere_points(4, "latlong") == 81


def test_too_few_points_fail_clearly():
    with pytest.raises(InputError, match="cannot resolve degrees up to lmax=4"):
        SphericalTransform(4, sphere_points("latlong", 64, 0))


def test_lebedev_rules_offered_have_positive_weights():
    """Log-weights enter the attention logits: the 74-point rule (negative weights) is not offered."""
    counts = lebedev_point_counts()
    assert 74 not in counts and {6, 110, 590} <= set(counts)
    for count in (6, 110, 590):
        assert np.all(sphere_points("lebedev", count, 0).weights > 0)


def _gram_condition(lmax: int, points: SpherePoints) -> float:
    harmonics = real_spherical_harmonics(lmax, torch.tensor(points.xyz))
    weights = torch.tensor(points.weights)
    return float(torch.linalg.cond(harmonics.T @ (weights[:, None] * harmonics)))


def _equator(count: int) -> SpherePoints:
    angle = np.arange(count) * 2 * math.pi / count
    xyz = np.stack([np.cos(angle), np.sin(angle), np.zeros(count)], axis=1)
    return SpherePoints(xyz=xyz, weights=np.full(count, 4 * math.pi / count))


@pytest.mark.parametrize("lmax", [1, 2, 4, 6])
def test_gram_condition_threshold_separates_usable_sets(float64, lmax):
    """design §2.5: the point sets a config can ask for (Fibonacci from (L+1)^2 points on,
    Lebedev rules exact to 2L) sit many decades below MAX_GRAM_CONDITION and build; sets
    that cannot resolve degree L (one circle; Lebedev rules with enough points but exact below
    2L) sit many decades above it and are refused."""
    k = num_coefficients(lmax)
    usable = [sphere_points("fibonacci", count, steps)
              for count in (k, min_sphere_points(lmax), 2 * min_sphere_points(lmax))
              for steps in (0, 500)]
    usable.append(sphere_points("lebedev", min(count for count, degree
                                               in lebedev_point_counts().items()
                                               if degree >= 2 * lmax)))
    degenerate = [_equator(4 * k)] + [
        sphere_points("lebedev", count) for count, degree in lebedev_point_counts().items()
        if count >= k and degree < 2 * lmax]
    assert max(_gram_condition(lmax, points) for points in usable) < MAX_GRAM_CONDITION / 1e5
    assert min(_gram_condition(lmax, points) for points in degenerate) > MAX_GRAM_CONDITION * 1e7
    for points in usable:
        SphericalTransform(lmax, points)
    for points in degenerate:
        with pytest.raises(InputError, match="cannot resolve degrees up to"):
            SphericalTransform(lmax, points)
