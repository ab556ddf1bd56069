"""The batched mixture of EquiformerV2 steerable experts equals calling them one by one."""

from __future__ import annotations

import torch

from est_fairchem.models.equiformer_v2.experts import can_batch, mix_eqv2_experts
from tests.model_utils import build, small_model_config

PAPER_GRID = {"lmax_list": [4], "mmax_list": [2], "grid_resolution": 18}
EST = {"num_points": 64, "num_steerable_experts": 3, "num_spherical_experts": 1,
       "spherical_hidden_channels": 32, "steerable_hidden_channels": 16}


def _update(**backbone_overrides):
    model = build(small_model_config(EST, **{**PAPER_GRID, **backbone_overrides})).double()
    update = model.backbone.blocks[0].update
    with torch.no_grad():  # move every parameter off its initial value (norms start at 1/0)
        for parameter in update.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return update


def _one_by_one(update, x, gates):
    return sum(gates[:, i, None, None] * e(x) for i, e in enumerate(update.steerable_experts))


def test_batched_mixture_equals_the_experts_one_by_one(float64):
    """Outputs and gradients of the batched mixture against one call per expert."""
    update = _update().train()
    torch.manual_seed(3)
    x = torch.randn(7, 25, update.spherical.channels, requires_grad=True)
    gates = torch.softmax(torch.randn(7, 3), dim=-1)
    reference = _one_by_one(update, x, gates)
    batched = update.mix_steerable(x, gates)
    assert torch.allclose(batched, reference, rtol=1e-12, atol=1e-12)

    inputs = [x, *update.steerable_experts.parameters()]
    expected = torch.autograd.grad(reference.square().sum(), inputs)
    actual = torch.autograd.grad(batched.square().sum(), inputs)
    for a, b in zip(actual, expected):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_backbone_uses_the_batched_mixture_and_keeps_fairchem_parameter_names():
    update = _update()
    assert update.steerable_mixture is mix_eqv2_experts
    names = {name for name, _ in update.named_parameters()}
    assert "steerable_experts.2.ffn.so3_linear_1.weight" in names
    assert "steerable_experts.0.ffn.grid_mlp.4.weight" in names
    assert "steerable_experts.1.norm.affine_weight" in names


def test_other_feed_forward_variants_fall_back_to_one_call_per_expert(float64):
    update = _update(use_grid_mlp=False)
    assert not can_batch(list(update.steerable_experts))
    assert update.steerable_mixture is None
    x = torch.randn(4, 25, update.spherical.channels)
    gates = torch.softmax(torch.randn(4, 4), dim=-1)
    out = update.mix_steerable(x, gates[:, :3])
    assert torch.allclose(out, _one_by_one(update, x, gates[:, :3]))


def _saved_bytes(update, x) -> int:
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.nbytes) or t, lambda t: t):
        update(x, torch.zeros(x.shape[0], dtype=torch.long))
    return sum(saved)


def test_recompute_keeps_far_less_for_backward_and_gives_the_same_gradients(float64):
    """``est.recompute_update``: the same random grid rotation is redrawn in backward, so the
    gradients equal those of the stored forward."""
    update = _update().train()
    x = torch.randn(16, 25, update.spherical.channels, requires_grad=True)
    batch = torch.zeros(16, dtype=torch.long)
    torch.manual_seed(11)
    stored_grad = torch.autograd.grad(update(x, batch).square().sum(), x)[0]
    stored = _saved_bytes(update, x)
    update.recompute = True
    torch.manual_seed(11)
    recomputed_grad = torch.autograd.grad(update(x, batch).square().sum(), x)[0]
    assert torch.allclose(recomputed_grad, stored_grad, rtol=1e-10, atol=1e-12)
    assert _saved_bytes(update, x) < stored / 5
