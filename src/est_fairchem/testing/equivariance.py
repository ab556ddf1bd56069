"""Equivariance measurements shared by the tests, benchmarks and tools."""

from __future__ import annotations

import torch

from est_fairchem.sphere.rotation import block_wigner_d


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """mean|actual - expected| / mean|expected| (0 when both vanish)."""
    scale = expected.abs().mean()
    diff = (actual - expected).abs().mean()
    if scale == 0:
        return float(diff)
    return float(diff / scale)


def rotate_steerable(x: torch.Tensor, rotation: torch.Tensor, lmax: int) -> torch.Tensor:
    """Apply D(R) to steerable features [N, (L+1)^2, C] (e3nn convention); R is [3, 3]."""
    wigner = block_wigner_d(lmax, rotation[None].to(torch.float64))[0].to(x.dtype)
    return torch.einsum("kj,njc->nkc", wigner, x)
