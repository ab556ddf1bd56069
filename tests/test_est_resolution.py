"""One resolution of the ``est:`` options (``models/common/est_resolution.py``): every backbone's
``est_config`` is complete (no null width it uses), it is what the blocks are built from, what
the log line names and what checkpoints store; repulsion is recorded only for Fibonacci
points."""

from __future__ import annotations

import logging

import pytest

from est_fairchem.models.common.est_config import ESTConfigError
from est_fairchem.models.common.est_resolution import resolve_est_options
from est_fairchem.models.common.trained_options import UNCOMPARED
from est_fairchem.nn.experts import SphericalExperts
from est_fairchem.nn.spherical_branch import SphericalBranch
from tests.test_est_preset import CONFIGS, _backbone

USED_WIDTHS = {  # the widths each backbone's blocks take from its options
    "EquiformerV2ESTBackbone": ("steerable_hidden_channels", "spherical_hidden_channels",
                                "fourier_channels"),
    "EquiformerESTBackbone": ("spherical_hidden_channels", "fourier_channels"),
    "ESTBackbone": ("spherical_hidden_channels",),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("est", [{}, {"preset": "paper"},
                                 {"sampling": "lebedev", "num_points": 110,
                                  "num_steerable_experts": 1}])
def test_the_resolved_options_are_built_logged_and_stored(name, est, caplog):
    with caplog.at_level(logging.INFO, logger="est_fairchem.models.common.est_preset"):
        backbone = _backbone(name, est)
    config = backbone.est_config
    assert all(getattr(config, key) is not None for key in USED_WIDTHS[name])
    assert config.repulsion_steps == (0 if config.sampling == "lebedev" else 500)
    stored = {k: v for k, v in backbone.est_options.items() if k.startswith("est.")}
    assert stored == {f"est.{k}": v for k, v in config.to_dict().items() if k not in UNCOMPARED}
    logged = [r.getMessage() for r in caplog.records if "EST options" in r.getMessage()]
    assert len(logged) == 1 and logged[0].endswith(", ".join(
        f"{k}={str(v).lower() if isinstance(v, bool) else 'null' if v is None else v}"
        for k, v in config.to_dict().items()) + (
        ", message.num_steerable_experts=1, message.num_spherical_experts=2, "
        "message.spherical_hidden_channels=32, message.query_residual=true"
        if name == "ESTBackbone" else ""))
    branches = [m for m in backbone.modules() if isinstance(m, SphericalBranch)]
    assert branches and all(
        b.spherical_experts.hidden_channels == config.spherical_hidden_channels
        and b.transform.num_points == config.num_points for b in branches)
    if name == "EquiformerESTBackbone":
        assert all(b.channels == config.fourier_channels for b in branches)
    if name == "ESTBackbone":
        message = backbone.layers[0].message
        assert isinstance(message.spherical_experts, SphericalExperts)
        assert message.spherical_experts.hidden_channels == \
            backbone.message_config.spherical_hidden_channels


def test_options_a_backbone_does_not_use_are_refused_by_the_one_resolution():
    with pytest.raises(ESTConfigError, match="est.fourier_channels=8: EquiformerV2's grid "
                                             "carries sphere_channels=16"):
        resolve_est_options({"fourier_channels": 8}, "equiformer_v2", 2, 16, 16)
    with pytest.raises(ESTConfigError, match="est.steerable_hidden_channels: not used by "
                                             "Equiformer"):
        resolve_est_options({"steerable_hidden_channels": 8}, "equiformer", 1, 16)
    with pytest.raises(ESTConfigError, match="est.num_heads=3: must divide channels=16"):
        resolve_est_options({"num_heads": 3}, "pure_est", 2, 16)
    explicit = resolve_est_options({"fourier_channels": 24}, "equiformer", 1, 16)
    assert (explicit.fourier_channels, explicit.spherical_hidden_channels) == (24, 48)
