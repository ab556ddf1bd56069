"""Sphere point sets, spherical Fourier transforms, Wigner-D matrices and random rotations, and
full-precision regions under autocast (pure torch + e3nn, no fairchem)."""

from est_fairchem.sphere.points import SAMPLINGS, SpherePoints, sphere_points
from est_fairchem.sphere.transform import (
    SphericalTransform,
    min_sphere_points,
    num_coefficients,
    real_spherical_harmonics,
)

__all__ = [
    "SAMPLINGS",
    "SpherePoints",
    "SphericalTransform",
    "min_sphere_points",
    "num_coefficients",
    "real_spherical_harmonics",
    "sphere_points",
]
