"""``est: {preset: paper}``: the paper's options per backbone (docs/design.md §10), explicit keys
over the preset, ``est: {}`` unchanged, the paper-size configs, checkpoints of a preset model, and
the one log line naming the options a model was built with (also in a real ``fairchem`` log)."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
import yaml

from est_fairchem.errors import InputError
from est_fairchem.models.common.est_config import ESTConfig, ESTConfigError
from est_fairchem.models.common.est_preset import paper_num_points, resolve_preset
from tests.model_utils import REPO, build, small_model_config
from tests.test_equiformer import equiformer_config

PURE_SMALL = REPO / "configs/qm9/demo/est_small.yml"
GRID = {"sampling": "fibonacci", "repulsion_steps": 500, "grid_frame": "global",
        "random_grid_rotation": True, "num_heads": 1, "orientation_embedding": True}
UNSET = {"steerable_hidden_channels": None, "fourier_channels": None,
         "recompute_update": False, "allow_option_change": False}
DEFAULTS = {"num_points": 64, "sampling": "fibonacci", "repulsion_steps": 500,
            "num_steerable_experts": 0, "num_spherical_experts": 2,
            "steerable_hidden_channels": None, "spherical_hidden_channels": None,
            "fourier_channels": None, "num_heads": 1, "orientation_embedding": True,
            "random_grid_rotation": True, "grid_frame": "local", "recompute_update": False,
            "allow_option_change": False}
"""The ``ESTConfig`` defaults before presets existed: ``est: {}`` must still give them."""


def pure_est_config(est: dict) -> dict:
    """The QM9 demo's small pure EST (L = 2, C = 16) with ``est`` as its whole block."""
    model = copy.deepcopy(yaml.safe_load(PURE_SMALL.read_text())["model"])
    model["backbone"]["est"] = est
    model["heads"] = {"u0_atomization": {"module": "est_fairchem.models.EquiformerScalarHead",
                                         "output_name": "u0_atomization",
                                         "avg_num_nodes": 18.03}}
    return {"model": model}


def _est_block(make_config):
    """``make_config(est)`` for an EST backbone, whose ``est`` key is left out for ``None``."""

    def config(est: dict | None) -> dict:
        made = make_config({} if est is None else est)
        if est is None:
            del made["model"]["backbone"]["est"]
        return made

    return config


# Small models: EquiformerV2 L = 2, C = ffn = 16; Equiformer L = 1; pure EST L = 2, C = 16.
CONFIGS = {
    "EquiformerV2ESTBackbone": _est_block(lambda est: small_model_config(est=est)),
    "EquiformerESTBackbone": _est_block(equiformer_config),
    "ESTBackbone": _est_block(pure_est_config),
}
PAPER = {  # preset paper on the small models (docs/design.md §10; models.common.est_preset),
    # resolved (models.common.est_resolution): EquiformerV2's grid carries sphere_channels = 16
    "EquiformerV2ESTBackbone": {**UNSET, **GRID, "num_points": 64, "num_steerable_experts": 5,
                                "num_spherical_experts": 5, "steerable_hidden_channels": 16,
                                "spherical_hidden_channels": 64, "fourier_channels": 16},
    "EquiformerESTBackbone": {**UNSET, **GRID, "num_points": 64, "num_steerable_experts": 6,
                              "num_spherical_experts": 5, "fourier_channels": 128,
                              "spherical_hidden_channels": 512},
    "ESTBackbone": {**UNSET, **GRID, "num_points": 64, "num_steerable_experts": 4,
                    "num_spherical_experts": 4, "spherical_hidden_channels": 64},
}
DEFAULT_WIDTHS = {  # the widths the defaults resolve to (est_config, stored options)
    "EquiformerV2ESTBackbone": {"est.steerable_hidden_channels": 8,
                                "est.spherical_hidden_channels": 32, "est.fourier_channels": 16},
    "EquiformerESTBackbone": {"est.spherical_hidden_channels": 32, "est.fourier_channels": 16},
    "ESTBackbone": {"est.spherical_hidden_channels": 32},
}


def _backbone(name: str, est: dict | None, seed: int = 0) -> torch.nn.Module:
    return build(CONFIGS[name](est), seed=seed).backbone


def test_paper_points_are_the_reference_codes_count_at_least_64():
    """(2L+1)(2L+2) of the reference code (90 at L = 4), at least 64
    (docs/design.md §10.5)."""
    assert [paper_num_points(lmax) for lmax in (1, 2, 3, 4, 6)] == [64, 64, 64, 90, 182]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_paper_preset_builds_the_documented_options(name, caplog):
    with caplog.at_level(logging.INFO, logger="est_fairchem.models.common.est_preset"):
        backbone = _backbone(name, {"preset": "paper"})
    assert backbone.est_config.to_dict() == PAPER[name]
    lines = [r.getMessage() for r in caplog.records if r.name == "est_fairchem.models.common.est_preset"]
    assert len(lines) == 1 and lines[0].startswith(
        f"EST options ({name}): preset paper -> num_points=64, sampling=fibonacci, ")
    assert "grid_frame=global" in lines[0] and "random_grid_rotation=true" in lines[0]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_est_defaults_are_unchanged_without_a_preset(name, caplog):
    """``est: {}``, no block and ``preset: default`` build the same model as before presets:
    the old defaults (null widths resolved as the stored options hold them), the same stored
    options, the same weights from the same seed."""
    with caplog.at_level(logging.INFO, logger="est_fairchem.models.common.est_preset"):
        backbones = [_backbone(name, est) for est in ({}, None, {"preset": "default"})]
    expected = {f"est.{k}": v for k, v in DEFAULTS.items()
                if k not in ("random_grid_rotation", "recompute_update", "allow_option_change")}
    expected.update(DEFAULT_WIDTHS[name])
    resolved = {**DEFAULTS, **{k[len("est."):]: v for k, v in DEFAULT_WIDTHS[name].items()}}
    for backbone in backbones:
        assert backbone.est_config.to_dict() == resolved
        assert {k: v for k, v in backbone.est_options.items() if k.startswith("est.")} == expected
    states = [b.state_dict() for b in backbones]
    for state in states[1:]:
        assert state.keys() == states[0].keys()
        assert all(torch.equal(state[k], states[0][k]) for k in state
                   if isinstance(state[k], torch.Tensor))
    assert f"EST options ({name}): preset default -> num_points=64" in caplog.text


def test_explicit_keys_override_the_preset():
    backbone = _backbone("EquiformerV2ESTBackbone", {
        "preset": "paper", "num_points": 100, "num_spherical_experts": 1,
        "grid_frame": "local", "spherical_hidden_channels": 24})
    assert backbone.est_config.to_dict() == {
        **PAPER["EquiformerV2ESTBackbone"], "num_points": 100, "num_spherical_experts": 1,
        "grid_frame": "local", "spherical_hidden_channels": 24}
    assert backbone.blocks[0].update.num_spherical == 1


def test_equiformer_spherical_width_follows_an_explicit_fourier_width():
    """The paper's spherical experts are 4 C_F wide, C_F as written beside the preset."""
    options = resolve_preset({"preset": "paper", "fourier_channels": 32}, "equiformer", lmax=2)
    assert options["fourier_channels"] == 32 and options["spherical_hidden_channels"] == 128
    assert "preset" not in options


@pytest.mark.parametrize("preset", ["papr", "Paper", 1])
def test_unknown_preset_is_refused_naming_the_valid_ones(preset):
    valid = r"expected one of \['default', 'paper'\]"
    with pytest.raises(ESTConfigError, match=r"est\.preset=.*" + valid):
        _backbone("EquiformerV2ESTBackbone", {"preset": preset})


def test_an_unknown_backbone_is_a_programming_error():
    with pytest.raises(ValueError, match="backbone='gemnet'") as raised:
        resolve_preset({"preset": "paper"}, "gemnet", lmax=2)
    assert not isinstance(raised.value, InputError)  # a bug: the command keeps its traceback


def _explicit_paper() -> dict:
    """What ``preset: paper`` stands for on the small EquiformerV2, written out."""
    return {k: v for k, v in PAPER["EquiformerV2ESTBackbone"].items()
            if k not in ("fourier_channels", "recompute_update", "allow_option_change")}


def test_a_preset_checkpoint_loads_with_the_equivalent_explicit_keys():
    """The checkpoint stores the resolved options, not the preset's name."""
    state = _backbone("EquiformerV2ESTBackbone", {"preset": "paper"}, seed=1).state_dict()
    stored = state["_extra_state"]["est_options"]
    assert "est.preset" not in stored and stored["est.num_points"] == 64
    explicit = _backbone("EquiformerV2ESTBackbone", _explicit_paper(), seed=2)
    explicit.load_state_dict(state)
    assert all(torch.equal(v, state[k]) for k, v in explicit.state_dict().items()
               if isinstance(v, torch.Tensor))


def test_a_preset_checkpoint_is_refused_when_an_explicit_key_differs():
    state = _backbone("EquiformerV2ESTBackbone", {"preset": "paper"}).state_dict()
    other = _backbone("EquiformerV2ESTBackbone", {**_explicit_paper(), "num_points": 70})
    with pytest.raises(InputError, match="est.num_points: trained 64, configured 70"):
        other.load_state_dict(state)


def _config_est(path: str) -> ESTConfig:
    """The resolved ``est:`` options of a config file, as its backbone resolves them (without
    building the paper-size model)."""
    from e3nn import o3

    from est_fairchem.tools.model_from_config import load_config

    backbone = load_config(REPO / path)["model"]["backbone"]
    model = backbone["model"].rsplit(".", 1)[-1]
    if model == "EquiformerV2ESTBackbone":
        lmax = backbone["lmax_list"][0]
        options = resolve_preset(backbone["est"], "equiformer_v2", lmax,
                                 backbone["sphere_channels"], backbone["ffn_hidden_channels"])
    elif model == "EquiformerESTBackbone":
        lmax = o3.Irreps(backbone["irreps_node_embedding"]).lmax
        options = resolve_preset(backbone["est"], "equiformer", lmax)
    else:
        lmax = backbone["lmax"]
        options = resolve_preset(backbone["est"], "pure_est", lmax, backbone["channels"])
    return ESTConfig.from_mapping(options, lmax=lmax)


PAPER_SIZE = {  # the options these configs spelled out before they used the preset
    "configs/oc20/s2ef/all/est_eqv2_N@8_L@4_M@2_45M.yml": dict(
        GRID, num_points=90, num_steerable_experts=5, num_spherical_experts=5,
        steerable_hidden_channels=128, spherical_hidden_channels=512),
    "configs/oc20/s2ef/2M/est_eqv2_N@8_L@4_M@2_45M.yml": dict(
        GRID, num_points=90, num_steerable_experts=5, num_spherical_experts=5,
        steerable_hidden_channels=128, spherical_hidden_channels=512),
    "configs/oc20/is2re/all/est_equiformer_L@1_6blocks_32M.yml": dict(
        GRID, num_points=86, sampling="lebedev", num_steerable_experts=6,
        num_spherical_experts=5, fourier_channels=128, spherical_hidden_channels=512),
    "configs/qm9/est/alpha.yml": dict(
        GRID, num_points=64, num_steerable_experts=4, num_spherical_experts=4,
        spherical_hidden_channels=512),
    "configs/qm9/est_ga/alpha.yml": dict(
        GRID, num_points=64, num_steerable_experts=10, num_spherical_experts=2,
        fourier_channels=64, spherical_hidden_channels=256),
}


@pytest.mark.parametrize("path", sorted(PAPER_SIZE))
def test_paper_size_configs_use_the_preset_and_keep_their_model(path):
    from est_fairchem.tools.model_from_config import load_config

    assert load_config(REPO / path)["model"]["backbone"]["est"]["preset"] == "paper"
    assert _config_est(path) == ESTConfig(**PAPER_SIZE[path])
