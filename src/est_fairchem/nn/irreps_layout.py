"""Between flat irreps features and the uniform layout ``[N, (L+1)^2, C]``.

Row ``l^2 + l + m`` of the uniform layout holds coefficient (l, m) of every channel (e3nn order,
the layout of fairchem's ``SO3_Embedding`` and of :class:`est_fairchem.nn.est_update.ESTUpdate`).
"""

from __future__ import annotations

import torch
from e3nn import o3


def uniform_irreps(lmax: int, channels: int) -> o3.Irreps:
    """``C x 0e + C x 1e + ... + C x Le``."""
    return o3.Irreps([(channels, (l, 1)) for l in range(lmax + 1)])


def irreps_to_coefficients(x: torch.Tensor, lmax: int, channels: int) -> torch.Tensor:
    """Flat ``uniform_irreps(L, C)`` features [N, sum_l C(2l+1)] -> [N, (L+1)^2, C].

    Row ``l^2 + l + m`` holds coefficient (l, m) of every channel (the layout of
    :class:`est_fairchem.nn.est_update.ESTUpdate`).
    """
    rows, offset = [], 0
    for l in range(lmax + 1):
        width = channels * (2 * l + 1)
        rows.append(x[:, offset : offset + width].reshape(-1, channels, 2 * l + 1).transpose(1, 2))
        offset += width
    return torch.cat(rows, dim=1)


def coefficients_to_irreps(y: torch.Tensor, lmax: int) -> torch.Tensor:
    """[N, (L+1)^2, C] -> flat ``uniform_irreps(L, C)`` features (inverse of the above)."""
    blocks = [y[:, l * l : (l + 1) ** 2, :].transpose(1, 2).reshape(y.shape[0], -1)
              for l in range(lmax + 1)]
    return torch.cat(blocks, dim=1)
