"""The spherical attention computes Eq. 13 as written: point vectors appended to queries and
keys, log quadrature weights added to the logits (here passed as one [S, S] bias instead)."""

from __future__ import annotations

import math

import pytest
import torch

from est_fairchem.nn.spherical_attention import attend_on_sphere, attention_bias
from est_fairchem.sphere.points import sphere_points
from est_fairchem.sphere.transform import SphericalTransform


def _appended_reference(q, k, v, points, log_weights, num_heads, orientation_embedding):
    """Eq. 13 literally: [q, p_s] . [k, p_t] / sqrt(d + 3) + log w_t, softmax over t."""
    n, s, c = q.shape
    split = lambda t: t.reshape(n, s, num_heads, c // num_heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    if orientation_embedding:
        p = points.expand(n, num_heads, s, 3)
        q, k = torch.cat([q, p], dim=-1), torch.cat([k, p], dim=-1)
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if log_weights is not None:
        logits = logits + log_weights
    return (torch.softmax(logits, dim=-1) @ v).transpose(1, 2).reshape(n, s, c)


@pytest.mark.parametrize("num_heads", [1, 4])
@pytest.mark.parametrize("orientation_embedding", [True, False])
@pytest.mark.parametrize("sampling,num_points", [("lebedev", 86), ("fibonacci", 64)])
def test_attention_matches_appended_orientation_vectors(num_heads, orientation_embedding,
                                                        sampling, num_points):
    torch.manual_seed(0)
    transform = SphericalTransform(4, sphere_points(sampling, num_points))
    points = transform.points.double()
    log_weights = transform.log_weights(torch.float64) if sampling == "lebedev" else None
    q, k, v = (3.0 * torch.randn(5, num_points, 32, dtype=torch.float64) for _ in range(3))
    bias, scale = attention_bias(points, log_weights, 32 // num_heads, orientation_embedding)
    out = attend_on_sphere(q, k, v, bias, scale, num_heads)
    reference = _appended_reference(q, k, v, points, log_weights, num_heads,
                                    orientation_embedding)
    assert out.shape == (5, num_points, 32)
    assert torch.allclose(out, reference, rtol=0, atol=1e-12)
    if orientation_embedding:  # the control: without the p_s . p_t term the result differs
        unoriented = _appended_reference(q, k, v, torch.zeros_like(points), log_weights,
                                         num_heads, True)
        assert (unoriented - reference).abs().max() > 1e-3
