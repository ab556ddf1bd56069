"""The depthwise tensor product with edge spherical harmonics and the gated activation."""

from __future__ import annotations

import torch
from e3nn import o3
from e3nn.nn import Gate
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


def gated_activation(irreps_out: o3.Irreps | str) -> tuple[nn.Module, o3.Irreps, o3.Irreps]:
    """Equiformer's activation producing ``irreps_out``: SiLU on scalars, sigmoid gates on the
    others (one extra scalar per gated irrep).

    Returns ``(module, irreps_in, irreps_act)``: the module maps ``[.., irreps_in.dim]`` to
    ``[.., irreps_act.dim]``, where ``irreps_act`` is ``irreps_out`` with its scalars first.
    """
    irreps_out = o3.Irreps(irreps_out).simplify()
    scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0 and ir.p == 1])
    gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if not (ir.l == 0 and ir.p == 1)])
    if gated.num_irreps == 0:
        return nn.SiLU(), scalars, scalars
    gates = o3.Irreps(f"{gated.num_irreps}x0e")
    gate = Gate(scalars, [nn.SiLU()], gates, [torch.sigmoid], gated)
    return gate, gate.irreps_in, gate.irreps_out
