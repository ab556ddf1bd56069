"""Checkpoints written before the EST update was split into a gate, steerable experts and a
spherical branch (named layers instead of ``nn.Sequential`` indices) load into today's models.

The golden checkpoints (``tests/golden/checkpoints/``) were written before the split, with
the old names (``update.gate.net.3.weight``, ``update.attention.*``,
``update.scalar_branch.1.*``); ``tests/test_golden_e2e.py`` also trains from them.
"""

from __future__ import annotations

import pytest
import torch

from est_fairchem.checkpoints import strip_module_prefix
from tests.golden.cases import CASES, GoldenCase
from tests.model_utils import build

# (new name, old name) of one tensor per renamed part, in block / layer 0
RENAMED = {
    "s2ef_est_eqv2": [
        ("backbone.blocks.0.update.gate.output.weight", "backbone.blocks.0.update.gate.net.3.weight"),
        ("backbone.blocks.0.update.spherical.attention.qkv.weight",
         "backbone.blocks.0.update.attention.qkv.weight"),
        ("backbone.blocks.0.update.spherical.scalar_branch.linear.bias",
         "backbone.blocks.0.update.scalar_branch.1.bias"),
    ],
    "is2re_est_equiformer": [
        ("backbone.blocks.0.update.gate.hidden.weight", "backbone.blocks.0.update.gate.net.1.weight"),
        ("backbone.blocks.0.update.spherical.scalar_branch.norm.weight",
         "backbone.blocks.0.update.spherical.scalar_branch.0.weight"),
    ],
    "qm9_pure_est": [
        ("backbone.layers.0.message.gate.norm.bias", "backbone.layers.0.message.gate.net.0.bias"),
        ("backbone.layers.0.update.spherical.spherical_experts.up.weight",
         "backbone.layers.0.update.spherical_experts.up.weight"),
    ],
}


def _model_section(case: GoldenCase) -> dict:
    from fairchem.core.common.utils import load_config

    config, _, _ = load_config(str(case.config))
    return {"model": config["model"]}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_checkpoint_from_before_the_split_loads_every_tensor(case):
    state = strip_module_prefix(torch.load(case.checkpoint, map_location="cpu",
                                           weights_only=False)["state_dict"])
    assert all(old in state for _, old in RENAMED[case.name])  # written with the old names
    model = build(_model_section(case))
    model.load_state_dict(state, strict=True)  # no missing, no unexpected key
    loaded = model.state_dict()
    for new, old in RENAMED[case.name]:
        assert new not in state and torch.equal(loaded[new], state[old])
