"""One mixture of hybrid experts (``nn/mixture.py``) in every EST block: the EquiformerV2 and
pure-EST updates, Equiformer's update and the pure EST's message block are all
``HybridExpertMixture`` and hold every gate there is; the pure EST's activation checkpointing
(the same recomputation path) gives the gradients of the stored forward."""

from __future__ import annotations

import pytest
import torch

from est_fairchem.models.equiformer.est_update import EquiformerESTUpdate
from est_fairchem.models.pure_est.message import ESTMessageBlock
from est_fairchem.nn.est_update import ESTUpdate
from est_fairchem.nn.experts import ExpertGate
from est_fairchem.nn.mixture import HybridExpertMixture
from est_fairchem.testing.structures import graph_batch, made_molecule
from tests.model_utils import build, seeded_gradients, small_model_config
from tests.test_equiformer import equiformer_config
from tests.test_est_preset import pure_est_config

EST = {"num_points": 16, "num_steerable_experts": 1, "num_spherical_experts": 2,
       "spherical_hidden_channels": 16}
BACKBONES = {
    "EquiformerV2ESTBackbone": (lambda: small_model_config(est=EST), {ESTUpdate}),
    "EquiformerESTBackbone": (lambda: equiformer_config(EST), {EquiformerESTUpdate}),
    "ESTBackbone": (lambda: pure_est_config(EST), {ESTUpdate, ESTMessageBlock}),
}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_gate_belongs_to_the_one_mixture(name):
    make_config, expected = BACKBONES[name]
    model = build(make_config())
    mixtures = [m for m in model.modules() if isinstance(m, HybridExpertMixture)]
    assert {type(m) for m in mixtures} == expected
    gates = [m for m in model.modules() if isinstance(m, ExpertGate)]
    assert len(gates) == len(mixtures) > 0
    assert all(any(g is m.gate for m in mixtures) for g in gates)


def test_pure_est_activation_checkpointing_gives_the_stored_forwards_gradients(float64):
    """In training (random grid rotations on) each layer runs again in backward with the same
    rotations, so every gradient equals the one of the forward that keeps its activations."""
    radius = 5.0

    def model(checkpointing: bool) -> torch.nn.Module:
        config = pure_est_config({**EST, "random_grid_rotation": True})
        config["model"]["backbone"].update({"activation_checkpointing": checkpointing,
                                            "otf_graph": False, "max_radius": radius})
        return build(config).double().train()

    stored, recomputed = model(False), model(True)
    recomputed.load_state_dict(stored.state_dict())
    batch = graph_batch([made_molecule(), made_molecule(seed=4)], radius)

    def gradients(net: torch.nn.Module) -> dict[str, torch.Tensor]:
        return seeded_gradients(
            net, lambda m: m(batch)["u0_atomization"]["u0_atomization"].square().sum(), 5)

    expected, actual = gradients(stored), gradients(recomputed)
    assert expected.keys() == actual.keys() and len(expected) > 20
    for name, grad in expected.items():
        assert torch.allclose(actual[name], grad, rtol=1e-9, atol=1e-12), name
