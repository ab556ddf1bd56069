"""Radial bases of edge lengths and the radial profile MLP (Equiformer, design §9.2)."""

from __future__ import annotations

import math

import torch
from torch import nn


class GaussianRadialBasis(nn.Module):
    """Equiformer's Gaussian radial basis: learnable Gaussians on the scaled length ``d / c``.

    ``b_k(d) = exp(-((w d / c + b - mu_k) / sigma_k)^2 / 2) / (sqrt(2 pi) sigma_k)`` with
    centres ``mu_k`` drawn uniformly in [0, 1], widths ``sigma_k`` uniformly in
    [1 / num_basis, 1] (1/128 for Equiformer's 128 Gaussians) and one scalar weight ``w``
    (starting at 1) and bias ``b`` (0), all learned; Equiformer takes this layer from
    Graphormer. ``sigma`` enters as ``|sigma| + 1e-5``.

    With ``element_affine`` (an option, off in Equiformer) ``w`` and ``b`` are replaced by an
    affine per element pair, ``a = 1 + alpha[Z_i] + alpha[Z_j]``, ``s = beta[Z_i] + beta[Z_j]``
    (tables starting at 0), and the centres start evenly spaced with widths 1 / num_basis:
    the basis of this package before it matched Equiformer (checkpoints made with it load
    with ``radial_element_affine: True`` in the backbone).

    Args:
        num_basis: number of Gaussians.
        cutoff: c, in Angstrom.
        max_num_elements: size of the element tables (``element_affine`` only).
        element_affine: per-element-pair stretching instead of one scalar affine.
    """

    def __init__(self, num_basis: int, cutoff: float, max_num_elements: int = 90,
                 element_affine: bool = False) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.element_affine = element_affine
        if element_affine:
            self.mean = nn.Parameter(torch.linspace(0.0, 1.0, num_basis))
            self.std = nn.Parameter(torch.full((num_basis,), 1.0 / num_basis))
            self.element_scale = nn.Embedding(max_num_elements, 1)
            self.element_shift = nn.Embedding(max_num_elements, 1)
            nn.init.zeros_(self.element_scale.weight)
            nn.init.zeros_(self.element_shift.weight)
            return
        self.mean = nn.Parameter(torch.empty(num_basis).uniform_(0.0, 1.0))
        self.std = nn.Parameter(torch.empty(num_basis).uniform_(1.0 / num_basis, 1.0))
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(
        self, distance: torch.Tensor, atomic_numbers: torch.Tensor, edge_src: torch.Tensor,
        edge_dst: torch.Tensor,
    ) -> torch.Tensor:
        """[E] lengths (Angstrom) -> [E, num_basis]."""
        scaled = distance[:, None] / self.cutoff
        if self.element_affine:
            source, target = atomic_numbers[edge_src], atomic_numbers[edge_dst]
            scale = 1 + self.element_scale(source) + self.element_scale(target)
            x = scale * scaled + self.element_shift(source) + self.element_shift(target)
        else:
            x = self.weight * scaled + self.bias
        std = self.std.abs() + 1e-5
        return torch.exp(-0.5 * ((x - self.mean) / std) ** 2) / (math.sqrt(2 * math.pi) * std)


def polynomial_envelope(x: torch.Tensor, p: int = 5) -> torch.Tensor:
    """DimeNet's smooth cutoff ``1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)`` of
    ``x = d / cutoff`` (any shape), 0 from ``x = 1`` on: 1 at 0, and it and its first two
    derivatives vanish at 1, so it falls like ``(1 - x)^3`` there."""
    value = (1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1)
             - p * (p + 1) / 2 * x ** (p + 2))
    return torch.where(x < 1, value, torch.zeros_like(x))


class BesselRadialBasis(nn.Module):
    """Radial Bessel functions ``sqrt(2/c) sin(f_n d / c) / d`` with learnable frequencies
    ``f_n`` (starting at ``n pi``), times a smooth polynomial envelope that vanishes at the
    cutoff (DimeNet's basis, used by Equiformer for QM9's U0, U, H and G).

    Args:
        num_basis: number of functions.
        cutoff: c, in Angstrom.
        envelope_exponent: p of the envelope ``1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)``.
    """

    def __init__(self, num_basis: int, cutoff: float, envelope_exponent: int = 5) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.p = envelope_exponent
        self.frequencies = nn.Parameter(math.pi * torch.arange(1, num_basis + 1, dtype=torch.get_default_dtype()))

    def envelope(self, x: torch.Tensor) -> torch.Tensor:
        return polynomial_envelope(x, self.p)

    def forward(self, distance: torch.Tensor, *unused: torch.Tensor) -> torch.Tensor:
        """[E] lengths (Angstrom) -> [E, num_basis]."""
        x = (distance / self.cutoff).clamp(min=1e-6)[:, None]
        bessel = math.sqrt(2 / self.cutoff) * torch.sin(self.frequencies * x) / (x * self.cutoff)
        return bessel * self.envelope(x)


class RadialMLP(nn.Sequential):
    """Equiformer's radial profile: Linear -> LayerNorm -> SiLU per hidden layer, then Linear.

    Maps ``[E, sizes[0]]`` radial features to ``[E, sizes[-1]]`` tensor-product weights.
    """

    def __init__(self, sizes: list[int]) -> None:
        layers: list[nn.Module] = []
        for width_in, width_out in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(width_in, width_out), nn.LayerNorm(width_out), nn.SiLU()]
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
        super().__init__(*layers)
