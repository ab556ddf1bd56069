"""est-fairchem: Equivariant Spherical Transformer (EST) models for fairchem v1.

Importing this package is cheap; models live in :mod:`est_fairchem.models` (imported by
fairchem through the dotted class paths in the configs).
"""

__version__ = "0.1.0"
