"""The graph statistics a model is built with (avg_num_nodes, avg_degree) must be positive for
every backbone and head, are kept in its checkpoints, and a load into a model built with other
values is refused naming the key and both values (as the EST options are:
tests/test_trained_options.py). Checkpoints without stored statistics still load."""

from __future__ import annotations

import pytest

from est_fairchem.errors import InputError
from tests.model_utils import build, small_model_config
from tests.test_equiformer import SMALL_EST, equiformer_config
from tests.test_input_checks import TINY_EQV2_EST
from tests.test_pure_est import est_config

EXTRA_STATE = "backbone._extra_state"

BACKBONES = {  # name -> config builder taking backbone overrides
    "EquiformerV2ESTBackbone": lambda **o: small_model_config(est=dict(TINY_EQV2_EST), **o),
    "EquiformerV2Backbone": lambda **o: small_model_config(
        model="est_fairchem.models.EquiformerV2Backbone", **o),
    "EquiformerBackbone": lambda **o: equiformer_config(**o),
    "EquiformerESTBackbone": lambda **o: equiformer_config(dict(SMALL_EST), **o),
    "ESTBackbone": lambda **o: est_config(**o),
}
STORED = list(BACKBONES)  # every backbone the package builds; the baseline configs' too


@pytest.mark.parametrize("name", list(BACKBONES))
@pytest.mark.parametrize("key,value", [("avg_degree", 0), ("avg_degree", -3.0),
                                       ("avg_num_nodes", 0)])
def test_a_statistic_that_is_not_positive_is_refused_naming_it(name, key, value):
    """avg_degree: 0 was silently replaced by 23.395 (EquiformerV2) or divided by (Equiformer)."""
    if key == "avg_num_nodes" and not name.startswith("EquiformerV2"):
        pytest.skip("avg_num_nodes is a head option of this backbone (tested below)")
    with pytest.raises(InputError, match=rf"^{key}={value!r}: expected a positive number .*"
                                         r"est-fairchem graph-stats CONFIG"):
        build(BACKBONES[name](**{key: value}))


@pytest.mark.parametrize("head", [
    {"module": "est_fairchem.models.EquiformerScalarHead", "output_name": "u0_atomization"},
    {"module": "est_fairchem.models.EquivariantRank2Head", "output_name": "stress"},
])
def test_a_head_with_avg_num_nodes_zero_is_refused(head):
    config = (est_config() if "Scalar" in head["module"]
              else small_model_config(est=dict(TINY_EQV2_EST)))
    config["model"]["heads"] = {"out": {**head, "avg_num_nodes": 0.0}}
    with pytest.raises(InputError, match=r"^avg_num_nodes=0.0: expected a positive number"):
        build(config)


@pytest.mark.parametrize("name", STORED)
def test_a_checkpoint_loaded_with_another_avg_degree_is_refused_naming_both(name):
    trained = build(BACKBONES[name](avg_degree=28.6)).state_dict()
    assert trained[EXTRA_STATE]["graph_statistics"]["avg_degree"] == 28.6
    build(BACKBONES[name](avg_degree=28.6)).load_state_dict(trained)  # same values: loads
    model = build(BACKBONES[name](avg_degree=23.4))
    with pytest.raises(InputError) as error:
        model.load_state_dict(trained)
    message = str(error.value)
    assert "model.backbone.avg_degree: trained 28.6, configured 23.4" in message
    assert "\n" not in message


def test_the_equiformer_v2_statistics_are_stored_as_the_model_uses_them():
    """fairchem's EquiformerV2 takes a null avg_num_nodes as its OC20 value: that is stored."""
    trained = build(BACKBONES["EquiformerV2ESTBackbone"](avg_num_nodes=None)).state_dict()
    stored = trained[EXTRA_STATE]["graph_statistics"]
    assert stored["avg_num_nodes"] == pytest.approx(77.81317) and stored["avg_degree"] == 20.0
    model = build(BACKBONES["EquiformerV2ESTBackbone"](avg_num_nodes=18.5))
    with pytest.raises(InputError, match=r"model.backbone.avg_num_nodes: trained 77.81\d*, "
                                         r"configured 18.5"):
        model.load_state_dict(trained)


def test_a_head_loaded_with_another_avg_num_nodes_is_refused_naming_its_key():
    trained = build(est_config()).state_dict()
    config = est_config()
    config["model"]["heads"]["u0_atomization"]["avg_num_nodes"] = 40.0
    with pytest.raises(InputError, match=r"model.heads.u0_atomization.avg_num_nodes: trained "
                                         r"18.03, configured 40"):
        build(config).load_state_dict(trained)


@pytest.mark.parametrize("name", STORED)
def test_checkpoints_without_stored_statistics_still_load_strictly(name):
    from fairchem.core.common.utils import load_state_dict

    state = build(BACKBONES[name](avg_degree=28.6)).state_dict()
    old = {k: v for k, v in state.items() if not k.endswith("_extra_state")}
    checkpoints = [old]
    if "est_options" in state[EXTRA_STATE]:  # an EST checkpoint from before the statistics
        checkpoints.append({**state, EXTRA_STATE: {"est_options":
                                                   state[EXTRA_STATE]["est_options"]}})
    for checkpoint in checkpoints:
        model = build(BACKBONES[name](avg_degree=23.4))
        load_state_dict(model, checkpoint, strict=True)  # as fairchem's trainer loads them
