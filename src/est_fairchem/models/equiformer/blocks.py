"""Equiformer's transformer block: graph attention, then an update block (design §9.2)."""

from __future__ import annotations

import torch
from e3nn import o3
from fairchem.core.models.equiformer_v2.drop import GraphDropPath
from torch import nn

from est_fairchem.models.equiformer.graph_attention import GraphAttention
from est_fairchem.models.equiformer.irreps_norm import EquivariantLayerNorm


class TransBlock(nn.Module):
    """``x <- x + DropPath(GA(LN_1(x)))``;  ``x <- S(x) + DropPath(U(LN_2(x)))``.

    ``U`` is the update block (Equiformer's feed-forward network, or the EST update); ``S`` is
    a degree-wise linear shortcut when the output irreps differ (Equiformer's last block).

    Args:
        irreps_node: input irreps; irreps_out: output irreps.
        attention: the message block; update: ``[N, irreps_node.dim] -> [N, irreps_out.dim]``,
            called as ``update(u, batch)``.
        drop_path_rate: stochastic depth probability.
    """

    def __init__(
        self, irreps_node: o3.Irreps, irreps_out: o3.Irreps, attention: GraphAttention,
        update: nn.Module, drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm_1 = EquivariantLayerNorm(irreps_node)
        self.ga = attention
        self.norm_2 = EquivariantLayerNorm(irreps_node)
        self.update = update
        self.shortcut = None
        if o3.Irreps(irreps_out) != o3.Irreps(irreps_node):
            self.shortcut = o3.Linear(irreps_node, irreps_out, biases=True)
        self.drop_path = GraphDropPath(drop_path_rate) if drop_path_rate > 0 else None

    def _drop(self, x: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        return x if self.drop_path is None else self.drop_path(x, batch)

    def forward(
        self, x: torch.Tensor, edge_src: torch.Tensor, edge_dst: torch.Tensor,
        edge_sh: torch.Tensor, edge_radial: torch.Tensor, batch: torch.Tensor,
    ) -> torch.Tensor:
        """[N, irreps_node.dim] -> [N, irreps_out.dim]."""
        x = x + self._drop(self.ga(self.norm_1(x), edge_src, edge_dst, edge_sh, edge_radial), batch)
        update = self.update(self.norm_2(x), batch)
        if self.shortcut is not None:
            x = self.shortcut(x)
        return x + self._drop(update, batch)


class FeedForwardUpdate(nn.Module):
    """Adapter giving Equiformer's feed-forward block the update signature ``(u, batch)``."""

    def __init__(self, ffn: nn.Module) -> None:
        super().__init__()
        self.ffn = ffn

    def forward(self, u: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        return self.ffn(u)


