"""Weight initialisation shared by the Equiformer and pure-EST backbones."""

from __future__ import annotations

from torch import nn


def init_equiformer_weights(module: nn.Module) -> None:
    """Equiformer's initialisation of torch layers (``model.apply``): zero biases of linear
    layers, unit LayerNorms."""
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
