"""The degree-wise layers on uniform features ``[N, (L+1)^2, C]`` compute what fairchem's
EquiformerV2 layers compute (the claims of their docstrings: same function, other parameter
layout), and stay equivariant."""

from __future__ import annotations

import torch

from est_fairchem.nn.uniform_layers import DegreeLinear, EquivariantRMSNorm
from est_fairchem.testing.equivariance import relative_error, rotate_steerable

LMAX, C_IN, C_OUT = 3, 5, 7


def test_degree_linear_is_fairchems_so3_linear_v2_with_the_weight_transposed(float64):
    from fairchem.core.models.equiformer_v2.so3 import SO3_Embedding, SO3_LinearV2

    torch.manual_seed(0)
    ours = DegreeLinear(LMAX, C_IN, C_OUT)
    with torch.no_grad():
        ours.bias.normal_()
    theirs = SO3_LinearV2(C_IN, C_OUT, LMAX)
    theirs.load_state_dict({"weight": ours.weight.detach().transpose(1, 2),
                            "bias": ours.bias.detach(), "expand_index": theirs.expand_index})
    x = torch.randn(4, (LMAX + 1) ** 2, C_IN)
    embedding = SO3_Embedding(0, [LMAX], C_IN, x.device, x.dtype)
    embedding.set_embedding(x)
    assert torch.allclose(ours(x), theirs(embedding).embedding, atol=1e-12)
    assert relative_error(ours(rotate_steerable(x, _rotation(), LMAX)),
                          rotate_steerable(ours(x), _rotation(), LMAX)) < 1e-12


def test_equivariant_rms_norm_is_fairchems_layer_norm_array(float64):
    from fairchem.core.models.equiformer_v2.layer_norm import EquivariantLayerNormArray

    torch.manual_seed(1)
    ours = EquivariantRMSNorm(LMAX, C_IN)
    with torch.no_grad():
        for parameter in ours.parameters():
            parameter.normal_()
    theirs = EquivariantLayerNormArray(LMAX, C_IN)
    theirs.load_state_dict({
        "affine_weight": torch.cat([ours.scalar_norm.weight[None], ours.weight]).detach(),
        "affine_bias": ours.scalar_norm.bias.detach()})
    x = 3.0 * torch.randn(6, (LMAX + 1) ** 2, C_IN) + 1.0
    assert torch.allclose(ours(x), theirs(x), atol=1e-12)
    assert len(list(ours.parameters())) == 3 and len(list(theirs.parameters())) == 2
    assert relative_error(ours(rotate_steerable(x, _rotation(), LMAX)),
                          rotate_steerable(ours(x), _rotation(), LMAX)) < 1e-12


def _rotation() -> torch.Tensor:
    from est_fairchem.testing.equivariance import random_rotation

    return random_rotation(torch.Generator().manual_seed(7))
