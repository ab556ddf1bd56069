"""Segment sums without torch_scatter."""

from __future__ import annotations

import torch


def scatter_sum(src: torch.Tensor, index: torch.Tensor, num: int) -> torch.Tensor:
    """Sum rows of ``src`` [E, ...] into ``num`` rows by ``index`` [E]."""
    out = src.new_zeros((num, *src.shape[1:]))
    return out.index_add_(0, index, src)
