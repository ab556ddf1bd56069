"""Equiformer's feed-forward block on flat irreps features (design §9.2), and its gated activation.

Used by Equiformer's update, its EST steerable experts, and the pure EST's steerable experts
(through :class:`est_fairchem.nn.uniform_layers.UniformFeedForward`).
"""

from __future__ import annotations

import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import nn

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


class FeedForward(nn.Module):
    """Degree-wise linear -> gated activation -> degree-wise linear.

    (Equiformer writes the linear layers as tensor products with a constant ``1x0e`` node
    attribute, which is the same map.) Biases on scalar outputs only.

    Args:
        irreps_in, irreps_mid, irreps_out: input, hidden and output irreps.
    """

    def __init__(
        self, irreps_in: o3.Irreps | str, irreps_mid: o3.Irreps | str, irreps_out: o3.Irreps | str
    ) -> None:
        super().__init__()
        self.activation, activation_in, activation_out = gated_activation(irreps_mid)
        self.linear_1 = o3.Linear(irreps_in, activation_in, biases=True)
        self.linear_2 = o3.Linear(activation_out, irreps_out, biases=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, irreps_in.dim] -> [N, irreps_out.dim]."""
        return self.linear_2(self.activation(self.linear_1(x)))
