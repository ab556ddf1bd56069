"""EST-EquiformerV2 as fairchem builds it: symmetries of energies and forces in float64."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from est_fairchem.models.common.est_config import ESTConfigError
from est_fairchem.testing.backbone_suite import BackboneSuite
from tests.model_utils import build, small_model_config

RADIUS = 6.0
SMALL_EST = {"num_points": 36, "num_steerable_experts": 2, "num_spherical_experts": 2,
             "spherical_hidden_channels": 32, "steerable_hidden_channels": 16,
             "grid_frame": "global"}


def _config(est: dict | None, **overrides) -> dict:
    config = small_model_config(est, otf_graph=False, max_radius=RADIUS, **overrides)
    config["model"]["otf_graph"] = False
    return config


def _model(est: dict | None, **overrides) -> torch.nn.Module:
    return build(_config(est, **overrides)).double().eval()


def test_backbone_is_the_est_backbone_with_registered_heads():
    from est_fairchem.models import EquiformerV2ESTBackbone
    from est_fairchem.nn import ESTUpdate

    model = _model(SMALL_EST)
    assert isinstance(model.backbone, EquiformerV2ESTBackbone)
    assert all(isinstance(block.update, ESTUpdate) for block in model.backbone.blocks)
    assert not any(hasattr(block, "ffn") for block in model.backbone.blocks)
    assert len(model.backbone.blocks[0].update.steerable_experts) == 2


def test_energy_invariant_and_forces_equivariant_under_rotation():
    """Measured (float64, eval, 2 layers, lmax 2, C=16, random weights, max over 3 rotations):
    energy / force relative errors of plain EquiformerV2 2.1e-7 / 9.6e-5, EST with Lebedev
    110 points 1.2e-7 / 1.9e-5, EST with 36 Fibonacci points 1.9e-7 / 9.9e-5 (fairchem's float32
    Wigner tables set the floor). The suite's per-output bounds are ~10x; a wrong grid or
    rotation convention gives errors of order 1."""
    suite = TestEquiformerV2ESTBackbone()
    for est in (None, {**SMALL_EST, "num_points": 110, "sampling": "lebedev"}, SMALL_EST):
        suite.assert_rotation_equivariant(suite.build(_config(est)))


def test_steerable_experts_alone_are_as_equivariant_as_equiformer_v2():
    suite = TestEquiformerV2ESTBackbone()
    plain = suite.rotation_errors(suite.build(_config(None)), rotations=2)
    steerable = suite.rotation_errors(
        suite.build(_config({**SMALL_EST, "num_spherical_experts": 0})), rotations=2)
    for name in ("energy", "forces"):
        assert steerable[name] < max(10 * plain[name], 1e-8), name


def test_bad_est_options_fail_when_the_model_is_built():
    with pytest.raises(ESTConfigError, match="unknown EST option"):
        _model({"num_expert": 3})
    with pytest.raises(ESTConfigError, match="est.num_points=10: expected >= 16 for lmax=2"):
        _model({"num_points": 10})


def test_fairchem_wigner_d_is_ours_the_convention_of_our_transforms():
    """fairchem's EquiformerV2 rotates features with e3nn's Wigner-D convention (float32
    tables), the one our harmonics and Wigner-D satisfy (Y(Rp) = D(R) Y(p), tests/test_sphere.py)."""
    from fairchem.core.models.equiformer_v2.wigner import wigner_D

    from est_fairchem.sphere.wigner import wigner_d

    torch.manual_seed(0)
    alpha, beta, gamma = torch.rand(3) * 3
    rotation = o3.angles_to_matrix(alpha.double(), beta.double(), gamma.double())
    ours = wigner_d(4, rotation[None])[0]
    for degree in range(5):
        theirs = wigner_D(degree, alpha[None], beta[None], gamma[None])[0].double()
        block = slice(degree**2, (degree + 1) ** 2)
        assert torch.allclose(theirs, ours[block, block], atol=1e-5)


def test_expert_output_biases_get_no_weight_decay_like_every_bias():
    """fairchem's trainer skips weight decay for the names ``HydraModel.no_weight_decay()``
    lists (every name holding "bias", "embedding" or "frequencies"; the module-type rule of
    EquiformerV2's own ``no_weight_decay`` is not the one hydra models use), so the spherical
    experts' per-expert output biases, a bare parameter, are treated as every other bias."""
    model = build(small_model_config(est={"num_points": 16, "num_spherical_experts": 2}))
    skipped = set(model.no_weight_decay())
    biases = [n for n, _ in model.named_parameters() if n.endswith("spherical_experts.down_bias")]
    assert biases and all(name in skipped for name in biases)
    linear_weights = [n for n, _ in model.named_parameters()
                      if n.endswith("spherical_experts.up.weight")]
    assert linear_weights and not any(name in skipped for name in linear_weights)


class TestEquiformerV2ESTBackbone(BackboneSuite):
    """The shared backbone tests on EST-EquiformerV2 (the demo's small model, default grid).
    Measured floors (float64, random weights): energy ~2e-7, forces ~1e-4 relative under
    rotation, set by fairchem's float32 Wigner tables and random edge frames; ~1e-9 / ~1e-6
    under translation, permutation and batching."""

    vector_outputs = ("forces",)
    rotation_tolerances = {"energy": 2e-6, "forces": 1e-3}
    symmetry_tolerance = 1e-5

    def model_config(self) -> dict:
        config = small_model_config({"num_points": 36, "num_steerable_experts": 1,
                                     "num_spherical_experts": 2, "steerable_hidden_channels": 16,
                                     "spherical_hidden_channels": 32},
                                    otf_graph=False, max_radius=RADIUS)
        config["model"]["otf_graph"] = False
        return config
