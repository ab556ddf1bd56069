"""What the tests and benchmarks share: equivariance errors under random rotations, made
structures, reading training checkpoints, and writing result files atomically."""

from est_fairchem.testing.equivariance import relative_error, rotate_steerable

__all__ = ["relative_error", "rotate_steerable"]
