"""Equiformer's feed-forward update block (spec §9.2)."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from est_fairchem.models.equiformer.tensor_products import gated_activation


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
