"""The depthwise tensor product with edge spherical harmonics and the gated activation."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn


class DepthwiseTensorProduct(nn.Module):
    """Channel-wise ('uvu') tensor product of node features with one edge's harmonics.

    Every channel of every input irrep is coupled with every harmonic degree to each output
    irrep of degree <= ``lmax_out``; channels are not mixed (a linear layer after it does that),
    so the weights are one scalar per (path, channel): few enough to come from a radial MLP
    per edge.

    Args:
        irreps_in: node irreps.
        irreps_sh: edge spherical-harmonic irreps.
        lmax_out: highest output degree.
        internal_weights: learned weights shared by all edges instead of per-edge weights.
    """

    def __init__(
        self, irreps_in: o3.Irreps | str, irreps_sh: o3.Irreps | str, lmax_out: int,
        internal_weights: bool = False,
    ) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_sh = o3.Irreps(irreps_sh)
        outputs: list[tuple[int, o3.Irrep]] = []
        instructions = []
        for i, (mul, ir_in) in enumerate(self.irreps_in):
            for j, (_, ir_sh) in enumerate(self.irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out.l <= lmax_out:
                        instructions.append((i, j, len(outputs), "uvu", True))
                        outputs.append((mul, ir_out))
        self.irreps_out = o3.Irreps(outputs)
        self.tp = o3.TensorProduct(
            self.irreps_in, self.irreps_sh, self.irreps_out, instructions,
            internal_weights=internal_weights, shared_weights=internal_weights,
        )
        self.weight_numel = 0 if internal_weights else self.tp.weight_numel

    def forward(
        self, x: torch.Tensor, sh: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[E, irreps_in.dim] x [E, irreps_sh.dim] (weights [E, weight_numel]) -> [E, irreps_out.dim]."""
        if weight is None:
            return self.tp(x, sh)
        return self.tp(x, sh, weight)


