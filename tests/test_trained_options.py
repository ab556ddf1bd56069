"""A checkpoint keeps the EST options it was trained with (the backbone's torch extra state), and
loading it into a model configured with options that change the function is refused, listing
each differing option, unless `est.allow_option_change: true`. Old checkpoints without the
stored options still load. Through the real `fairchem --mode predict`:
tests/test_checkpoint_options_e2e.py."""

from __future__ import annotations

import logging

import pytest

from est_fairchem.errors import InputError
from tests.model_utils import build, small_model_config
from tests.test_equiformer import SMALL_EST, equiformer_config
from tests.test_input_checks import TINY_EQV2_EST
from tests.test_pure_est import est_config

EXTRA_STATE = "backbone._extra_state"
CONFIGS = {
    "EquiformerV2ESTBackbone": lambda est: small_model_config(est={**TINY_EQV2_EST, **est}),
    "EquiformerESTBackbone": lambda est: equiformer_config({**SMALL_EST, **est}),
    "ESTBackbone": lambda est: est_config(est),
}


def _state(name: str, **est) -> dict:
    return build(CONFIGS[name](est)).state_dict()


def test_the_state_dict_holds_the_resolved_options():
    state = _state("EquiformerV2ESTBackbone")
    stored = state[EXTRA_STATE]["est_options"]
    assert stored["est.num_points"] == 16 and stored["est.grid_frame"] == "global"
    # null widths are stored as the values the backbone uses (sphere_channels 16)
    assert stored["est.spherical_hidden_channels"] == 32 and stored["est.fourier_channels"] == 16
    assert "est.recompute_update" not in stored and "est.allow_option_change" not in stored


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_changed_option_is_refused_naming_it(name):
    """num_points changes no weight's shape: the checkpoint would load and predict otherwise."""
    trained = _state(name, num_points=110, grid_frame="local")
    model = build(CONFIGS[name]({"num_points": 146, "grid_frame": "local"}))
    with pytest.raises(InputError) as error:
        model.load_state_dict(trained)
    message = str(error.value)
    assert "est.num_points: trained 110, configured 146" in message
    assert "grid_frame" not in message and "allow_option_change: true" in message
    assert "\n" not in message


def test_every_differing_option_is_listed_and_the_flag_allows_loading(caplog):
    trained = _state("EquiformerV2ESTBackbone")
    changed = {"num_points": 26, "sampling": "lebedev", "orientation_embedding": False}
    with pytest.raises(InputError, match=r"est.num_points: trained 16, configured 26; "
                                         r"est.orientation_embedding: trained true, configured "
                                         r"false; est.repulsion_steps: trained 500, configured 0; "
                                         r"est.sampling: trained fibonacci, configured lebedev"):
        build(CONFIGS["EquiformerV2ESTBackbone"](changed)).load_state_dict(trained)
    allowed = build(CONFIGS["EquiformerV2ESTBackbone"]({**changed, "allow_option_change": True}))
    with caplog.at_level(logging.WARNING):
        allowed.load_state_dict(trained)
    assert "est.num_points: trained 16, configured 26" in caplog.text
    assert "allow_option_change is true" in caplog.text


def test_options_that_leave_predictions_unchanged_are_not_compared():
    trained = _state("EquiformerV2ESTBackbone")
    same_function = {"recompute_update": True, "random_grid_rotation": False,
                     "spherical_hidden_channels": 32}  # 32: the null default, spelled out
    build(CONFIGS["EquiformerV2ESTBackbone"](same_function)).load_state_dict(trained)


def test_the_pure_est_message_options_are_compared_too():
    trained = build(est_config()).state_dict()
    model = build(est_config(message={"query_residual": False}))
    with pytest.raises(InputError, match="message.query_residual: trained true, configured false"):
        model.load_state_dict(trained)


def test_old_checkpoints_without_stored_options_still_load_strictly():
    from fairchem.core.common.utils import load_state_dict

    old = {k: v for k, v in _state("EquiformerV2ESTBackbone").items() if k != EXTRA_STATE}
    model = build(CONFIGS["EquiformerV2ESTBackbone"]({"num_points": 25}))
    model.load_state_dict(old)  # strict: the missing extra state is not reported
    load_state_dict(model, old, strict=True)  # as fairchem's trainer loads checkpoints


def test_allow_option_change_must_be_a_boolean():
    from est_fairchem.models.common.est_config import ESTConfigError

    with pytest.raises(ESTConfigError, match="est.allow_option_change='yes': expected true or "
                                             "false"):
        build(CONFIGS["EquiformerV2ESTBackbone"]({"allow_option_change": "yes"}))
