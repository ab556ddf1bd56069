"""Reusable checks for EST models: equivariance errors under random rotations."""

from est_fairchem.testing.equivariance import relative_error, rotate_steerable

__all__ = ["relative_error", "rotate_steerable"]
