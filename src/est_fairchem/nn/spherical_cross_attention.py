"""Spherical cross-attention: the S query points of one grid attend over the S key points of
another (the EST message block, design §4.4, §8.1)."""

from __future__ import annotations

import torch
from torch import nn

from est_fairchem.errors import InputError
from est_fairchem.nn.spherical_attention import attend_on_sphere, memoized_attention_bias
from est_fairchem.sphere.precision import full_precision_dtype


class SphericalCrossAttention(nn.Module):
    """Pre-LayerNorm cross-attention across sphere points with the orientation embedding.

    Queries come from ``f_q``, keys and values from ``f_kv`` (each normalised by its own
    LayerNorm per point). As in :class:`est_fairchem.nn.spherical_attention.SphericalAttention`,
    each point's unit vector is appended to its query and key (Eq. 13: the logit of (s, t)
    gains the rotation-invariant ``p_s . p_t``) and, for a non-uniform point set, the key's log
    quadrature weight is added to the logits, so the softmax is a quadrature over the sphere.
    Under ``torch.autocast`` the projections run in half precision and the attention itself in
    float32 with autocast off.

    Args:
        channels: C of both grids (and of the output).
        num_heads: heads; C must be divisible by it.
        orientation_embedding: append ``p_s`` to queries and keys.
        dropout: dropout on the attention weights in training (Equiformer's ``alpha_drop``).
    """

    def __init__(self, channels: int, num_heads: int = 1, orientation_embedding: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise InputError(f"channels={channels} is not divisible by num_heads={num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"dropout={dropout}: expected a probability in [0, 1)")
        self.channels = channels
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.orientation_embedding = orientation_embedding
        self.dropout = dropout
        self.norm_q = nn.LayerNorm(channels)
        self.norm_kv = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(channels, 2 * channels)

    def forward(self, f_q: torch.Tensor, f_kv: torch.Tensor, points: torch.Tensor,
                log_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from the points of ``f_q`` over the points of ``f_kv``.

        Args:
            f_q: [E, S, C] query grid; f_kv: [E, S, C] key/value grid (same points).
            points: [S, 3] unit vectors of the grid.
            log_weights: [S] log quadrature weights (relative to uniform), or None.
        Returns:
            [E, S, C].
        """
        q = self.q(self.norm_q(f_q))
        k, v = self.kv(self.norm_kv(f_kv)).chunk(2, dim=-1)
        bias, scale = memoized_attention_bias(self, points, log_weights, self.head_dim,
                                              self.orientation_embedding, full_precision_dtype(q))
        return attend_on_sphere(q, k, v, bias, scale, self.num_heads,
                                dropout_p=self.dropout if self.training else 0.0)
