"""The grid's turn folded into the transforms, and constants kept between calls: the same
function as turning the coefficients first, with fewer operations per step."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from est_fairchem.models.common.est_config import ESTConfig
from est_fairchem.sphere.wigner import WignerFromRotation
from est_fairchem.sphere.constants import memoized
from est_fairchem.sphere.points import sphere_points
from est_fairchem.sphere.transform import SphericalTransform

LMAX = 4


@pytest.mark.parametrize("sampling,num_points", [("fibonacci", 64), ("lebedev", 86)])
def test_turned_transforms_equal_turning_the_coefficients(float64, sampling, num_points):
    torch.manual_seed(0)
    transform = SphericalTransform(LMAX, sphere_points(sampling, num_points))
    x = torch.randn(5, (LMAX + 1) ** 2, 8)
    grid = torch.randn(5, num_points, 8)
    wigner = WignerFromRotation(LMAX)(o3.rand_matrix(5, dtype=torch.float64))
    turned = torch.einsum("nkj,njc->nkc", wigner, x)
    assert torch.allclose(transform.to_grid(x, wigner), transform.to_grid(turned), atol=1e-12)
    back = torch.einsum("njk,njc->nkc", wigner, transform.from_grid(grid))  # D^T y
    assert torch.allclose(transform.from_grid(grid, wigner), back, atol=1e-12)
    assert torch.allclose(transform.from_grid(grid, wigner, without_degree_zero=True),
                          back[:, 1:], atol=1e-12)
    # the control: a turn that is not applied changes the samples
    assert (transform.to_grid(x, wigner) - transform.to_grid(x)).abs().max() > 1e-2


def test_memoized_constant_is_reused_until_its_source_or_key_changes():
    owner = torch.nn.Module()
    owner.register_buffer("source", torch.arange(4, dtype=torch.float64))
    calls = []

    def make(dtype):
        calls.append(dtype)
        return owner.source.to(dtype) * 2

    first = memoized(owner, "double", (owner.source,), torch.float32, lambda: make(torch.float32))
    again = memoized(owner, "double", (owner.source,), torch.float32, lambda: make(torch.float32))
    assert again is first and calls == [torch.float32]
    memoized(owner, "double", (owner.source,), torch.float64, lambda: make(torch.float64))
    assert calls == [torch.float32, torch.float64]
    owner.source.add_(1.0)  # modified in place: recomputed
    value = memoized(owner, "double", (owner.source,), torch.float64, lambda: make(torch.float64))
    assert torch.equal(value, 2 * torch.arange(1, 5, dtype=torch.float64))
    owner.source = torch.zeros(4, dtype=torch.float64)  # replaced (as by a move): recomputed
    value = memoized(owner, "double", (owner.source,), torch.float64, lambda: make(torch.float64))
    assert torch.equal(value, torch.zeros(4, dtype=torch.float64)) and len(calls) == 4
    assert owner.state_dict().keys() == {"source"}  # nothing memoized reaches checkpoints


@pytest.mark.parametrize("grid_frame", ["global", "local"])
def test_training_after_inference_mode_still_backpropagates(grid_frame):
    """Constants first computed under ``torch.inference_mode`` (fairchem's prediction) are
    not kept: an inference tensor saved for backward would fail the next training step."""
    torch.manual_seed(0)
    update = ESTConfig(spherical_hidden_channels=32, grid_frame=grid_frame).update_block(LMAX, 16, [])
    x = torch.randn(6, (LMAX + 1) ** 2, 16)
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    update.eval()
    with torch.inference_mode():
        expected = update(x, batch)
    update.train()
    update.spherical.random_grid_rotation = False
    x.requires_grad_(True)
    out = update(x, batch)
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert torch.allclose(out, expected, atol=1e-5)


def test_attention_bias_kept_under_autocast_is_full_precision():
    """The bias first computed inside ``torch.autocast`` is the float32 one, not autocast's
    half-precision product of the point vectors."""
    from est_fairchem.nn.spherical_attention import (
        SphericalAttention,
        attention_bias,
        memoized_attention_bias,
    )

    torch.manual_seed(0)
    transform = SphericalTransform(LMAX, sphere_points("lebedev", 86))
    attention = SphericalAttention(16, num_heads=2)
    log_weights = transform.log_weights(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        attention(torch.randn(3, 86, 16), transform.points, log_weights)
        kept, _ = memoized_attention_bias(attention, transform.points, log_weights, 8, True,
                                          torch.float32)
    expected, _ = attention_bias(transform.points.float(), log_weights, 8, True)
    assert kept.dtype == torch.float32
    assert torch.allclose(kept, expected, rtol=0, atol=1e-6)
