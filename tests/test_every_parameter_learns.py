"""Every parameter of every backbone gets a gradient in a training step: nothing is computed
and thrown away (the pure EST's last layer used to compute a spherical branch whose output no
head read). fairchem's EquiformerV2 heads zero-initialise their last layers, so at the first
step their inner layers get no gradient; heads are fairchem's, not checked here."""

from __future__ import annotations

import pytest
import torch

from tests.model_utils import build, small_model_config
from tests.test_equiformer import SMALL_EST, equiformer_config
from tests.test_input_checks import _batch
from tests.test_pure_est import batch_of, est_config, molecule


def _slabs():
    from est_fairchem.testing.structures import made_slab

    return _batch([made_slab(), made_slab(seed=4)], sids=[1, 2])


BACKBONES = {
    "EquiformerV2ESTBackbone": (
        lambda: small_model_config(est={"num_points": 16, "num_steerable_experts": 1,
                                        "num_spherical_experts": 1, "grid_frame": "local"}),
        _slabs),
    "EquiformerESTBackbone": (lambda: equiformer_config(SMALL_EST, otf_graph=True), _slabs),
    "EquiformerBackbone": (lambda: equiformer_config(otf_graph=True), _slabs),
    "ESTBackbone": (est_config,
                    lambda: batch_of([molecule(), molecule("CH3CH2OH", seed=1)])),
}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_parameter_gets_a_gradient(name):
    make_config, make_batch = BACKBONES[name]
    batch = make_batch()
    model = build(make_config()).to(batch.pos.dtype).train()
    loss = 0
    for key, value in model(batch).items():
        value = value[key] if isinstance(value, dict) else value
        loss = loss + value.pow(2).sum()
    loss.backward()
    backbone = [(n, p) for n, p in model.named_parameters() if n.startswith("backbone.")]
    assert backbone
    idle = [n for n, p in backbone if p.grad is None or not bool(p.grad.abs().max() > 0)]
    assert idle == [], f"{len(idle)} of {len(backbone)} parameters without gradient: {idle}"
    assert all(torch.isfinite(p.grad).all() for _, p in backbone)
