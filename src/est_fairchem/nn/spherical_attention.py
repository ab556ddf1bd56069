"""Spherical self-attention over the S grid points of each node (design §4; the paper's Eqs. 9
and 13)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from est_fairchem.errors import InputError
from est_fairchem.sphere.constants import memoized
from est_fairchem.sphere.precision import full_precision, full_precision_dtype


def attention_scale(head_dim: int, orientation_embedding: bool) -> float:
    """1 / sqrt(width) of each head, widened by 3 when point vectors are appended (Eq. 13)."""
    return (head_dim + (3 if orientation_embedding else 0)) ** -0.5


def attention_bias(
    points: torch.Tensor, log_weights: torch.Tensor | None, head_dim: int,
    orientation_embedding: bool,
) -> tuple[torch.Tensor | None, float]:
    """The logit terms that do not depend on the features, as one [S, S] bias, and the scale.

    Appending ``p_s`` to each query and ``p_t`` to each key (Eq. 13) adds ``p_s . p_t`` to
    the dot product and widens the head to d + 3, so the logit of (s, t) is
    ``(q_s . k_t + p_s . p_t) / sqrt(d + 3) + log w_t``. The second and third terms are fixed
    by the grid: they are passed as one additive mask, the same function without
    concatenating three channels to every query and key (the heads stay d wide, which
    fused attention kernels need).

    Args:
        points: [S, 3] unit vectors; log_weights: [S] log quadrature weights, or None.
    Returns:
        ([S, S] bias or None, the scale of q . k).
    """
    scale = attention_scale(head_dim, orientation_embedding)
    bias = None
    if orientation_embedding:
        bias = (points @ points.T) * scale
    if log_weights is not None:
        weights = log_weights.to(points.dtype)[None, :]
        bias = weights.expand(points.shape[0], -1) if bias is None else bias + weights
    return bias, scale


def memoized_attention_bias(
    owner: nn.Module, points: torch.Tensor, log_weights: torch.Tensor | None, head_dim: int,
    orientation_embedding: bool, dtype: torch.dtype,
) -> tuple[torch.Tensor | None, float]:
    """:func:`attention_bias` in ``dtype``, kept on ``owner`` between calls (the grid is fixed)."""
    scale = attention_scale(head_dim, orientation_embedding)
    if not orientation_embedding and log_weights is None:
        return None, scale
    sources = (points,) if log_weights is None else (points, log_weights)

    def make() -> torch.Tensor:
        with full_precision(points.device):  # p_s . p_t in ``dtype``, not autocast's
            bias, _ = attention_bias(points.to(dtype), log_weights, head_dim,
                                     orientation_embedding)
        return bias.contiguous()

    bias = memoized(owner, "attention_bias", sources, (dtype, head_dim, orientation_embedding),
                    make)
    return bias, scale


def attend_on_sphere(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, scale: float,
    num_heads: int, dropout_p: float = 0.0,
) -> torch.Tensor:
    """Multi-head attention of each query point over the key points of the same grid.

    Args:
        q, k, v: [N, S, C] projected queries, keys and values (C divisible by ``num_heads``).
        bias, scale: the [S, S] logit bias (or None), in the dtype the attention runs in
            (``full_precision_dtype(q)``), and the scale of q . k, from
            :func:`attention_bias` (orientation embedding, Eq. 13, and log quadrature weights).
        dropout_p: dropout of the attention weights.
    Returns:
        [N, S, C], computed in float32 (at least) even under autocast.
    """
    n, s, channels = q.shape
    head_dim = channels // num_heads
    split = lambda t: t.view(n, s, num_heads, head_dim).transpose(1, 2)  # noqa: E731
    dtype = full_precision_dtype(q)
    with full_precision(q.device):
        q, k, v = split(q.to(dtype)), split(k.to(dtype)), split(v.to(dtype))  # [N, H, S, d]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    return out.transpose(1, 2).reshape(n, s, channels)


class SphericalAttention(nn.Module):
    """Pre-LayerNorm attention across sphere points with the relative orientation embedding.

    Each point's unit vector ``p_s`` is appended to its query and key, so the logit of the pair
    (s, t) gains ``p_s . p_t``, which depends only on the angle between the points and so is
    rotation invariant (Eq. 13). For a non-uniform point set the log quadrature weight of each
    key is added to the logits, making the softmax a quadrature of an integral over the sphere
    (design §4.3, §13.2). Computed with ``torch.nn.functional.scaled_dot_product_attention``;
    under ``torch.autocast`` the projections run in half precision but the attention itself (logits,
    softmax, weighted sum) runs with autocast disabled in float32, as does its output.

    Args:
        channels: C, channels of the grid features.
        num_heads: attention heads; C must be divisible by it (the reference uses 1).
        orientation_embedding: append ``p_s`` to queries and keys (Eq. 13).
    """

    def __init__(self, channels: int, num_heads: int = 1, orientation_embedding: bool = True):
        super().__init__()
        if channels % num_heads != 0:
            raise InputError(f"channels={channels} is not divisible by num_heads={num_heads}")
        self.channels = channels
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.orientation_embedding = orientation_embedding
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)

    def forward(
        self, f: torch.Tensor, points: torch.Tensor, log_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attend across points.

        Args:
            f: [N, S, C] grid features.
            points: [S, 3] unit vectors of the grid.
            log_weights: [S] log quadrature weights (relative to uniform), or None.
        Returns:
            [N, S, C].
        """
        q, k, v = self.qkv(self.norm(f)).chunk(3, dim=-1)
        bias, scale = memoized_attention_bias(self, points, log_weights, self.head_dim,
                                              self.orientation_embedding, full_precision_dtype(q))
        return attend_on_sphere(q, k, v, bias, scale, self.num_heads)
