"""Named sets of ``est:`` options (``est: {preset: paper}``), resolved into plain options.

``preset: default`` (or no preset) leaves the block as written: the :class:`ESTConfig`
defaults fill in the rest (two spherical experts of width 2C, no steerable expert, 64 points,
local frame). ``preset: paper`` gives the paper's model as reconstructed in design §10: the
paper's grid (Fibonacci points with repulsion, one global grid turned by a random rotation per
system in training) and, per backbone, the expert mix of this package's paper-size configs.
Keys written beside the preset override it. The preset is resolved before
:meth:`ESTConfig.from_mapping` validates the block, so the options a checkpoint stores
(:mod:`est_fairchem.models.common.trained_options`) are the resolved ones, never the preset's name.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from est_fairchem.models.common.est_config import ESTConfig, ESTConfigError, options_mapping
from est_fairchem.models.common.trained_options import spelled

PRESETS = ("default", "paper")
BACKBONES = ("equiformer_v2", "equiformer", "pure_est")

PAPER_GRID = {
    "sampling": "fibonacci",  # design §3.1 (the paper's Eq. 11)
    "repulsion_steps": 500,  # design §3.2
    "grid_frame": "global",  # the paper's one fixed grid
    "random_grid_rotation": True,  # design §3.5
    "num_heads": 1,  # design §4.1
    "orientation_embedding": True,  # design §4.2 (the paper's Eq. 13)
}
"""The paper's grid and attention, the same for every backbone."""

PAPER_EXPERTS = {
    "equiformer_v2": (5, 5),  # 44.4M with this package's experts (paper 45M; design §10.2)
    "equiformer": (6, 5),  # 32.9M on Equiformer's IS2RE model (paper 32.47M; design §10.3)
    "pure_est": (4, 4),  # QM9 (design §10.4: counts lost; spherical 2-4)
}
"""(steerable, spherical) expert counts per backbone: the paper's counts were stripped
(Tables 9, 10); these match its parameter counts where it gives one."""

PAPER_FOURIER_CHANNELS = 128  # C_F of Equiformer's projection to the sphere (design §10.3)
PAPER_SPHERICAL_WIDTH = 4  # spherical expert hidden = 4 x grid channels (design §5.3, §10.2)
PAPER_MIN_POINTS = 64  # design §10.5 (L = 1: S >= 64; L = 2: S = 64, Table 12)


def paper_num_points(lmax: int) -> int:
    """S of the paper preset: the reference code's (2L+1)(2L+2) (90 at L = 4),
    at least 64 (64 for L = 2, at least 64 for L = 1; design §10.5)."""
    return max((2 * lmax + 1) * (2 * lmax + 2), PAPER_MIN_POINTS)


def preset_name(options: Any) -> str:
    """The ``preset`` of an ``est:`` block (``default`` when absent or null); raises
    ``ESTConfigError`` naming the valid presets for any other value."""
    name = options_mapping(options, "est", example="preset: paper").get("preset")
    name = "default" if name is None else name
    if name not in PRESETS:
        raise ESTConfigError(f"est.preset={name!r}: expected one of {list(PRESETS)}")
    return name


def _paper_widths(backbone: str, explicit: Mapping[str, Any], channels: int | None,
                  ffn_hidden_channels: int | None) -> dict[str, int]:
    """Expert widths of the paper preset (design §10): spherical 4 x the grid's channels
    (Equiformer: C_F, as written beside the preset or 128); EquiformerV2's steerable experts at
    ``ffn_hidden_channels``."""
    if backbone == "equiformer":
        widths = {"fourier_channels": PAPER_FOURIER_CHANNELS}
        channels = explicit.get("fourier_channels", PAPER_FOURIER_CHANNELS)
    else:
        widths = {}
    if isinstance(channels, int):
        widths["spherical_hidden_channels"] = PAPER_SPHERICAL_WIDTH * channels
    if backbone == "equiformer_v2" and ffn_hidden_channels is not None:
        widths["steerable_hidden_channels"] = ffn_hidden_channels
    return widths


def paper_options(backbone: str, lmax: int, explicit: Mapping[str, Any] | None = None,
                  channels: int | None = None,
                  ffn_hidden_channels: int | None = None) -> dict[str, Any]:
    """The options ``preset: paper`` stands for on ``backbone`` (one of :data:`BACKBONES`) at
    degree ``lmax``; ``channels`` are the grid's (EquiformerV2 ``sphere_channels``, the pure
    EST's ``channels``; Equiformer takes C_F from ``explicit``, the keys beside the preset)."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone={backbone!r}: expected one of {list(BACKBONES)}")
    steerable, spherical = PAPER_EXPERTS[backbone]
    return {
        "num_points": paper_num_points(lmax),
        **PAPER_GRID,
        "num_steerable_experts": steerable,
        "num_spherical_experts": spherical,
        **_paper_widths(backbone, explicit or {}, channels, ffn_hidden_channels),
    }


def resolve_preset(options: Any, backbone: str, lmax: int, channels: int | None = None,
                   ffn_hidden_channels: int | None = None) -> dict[str, Any]:
    """The ``est:`` block ``options`` with its ``preset`` replaced by the options it stands for
    (see :func:`paper_options`); keys written in the block override the preset's. ``default``
    returns the block unchanged, less the ``preset`` key."""
    name = preset_name(options)
    explicit = {k: v for k, v in options_mapping(options, "est", "").items() if k != "preset"}
    if name == "default":
        return explicit
    return {**paper_options(backbone, lmax, explicit, channels, ffn_hidden_channels), **explicit}


def describe_options(config: ESTConfig, stored: Mapping[str, Any]) -> str:
    """``num_points=90, sampling=fibonacci, ...``: every field of ``config`` (a null width as
    the value the backbone uses, from ``stored``, the checkpoint's ``{"est.x": ...}``), then the
    other stored sections (the pure EST's ``message.*``)."""
    values: dict[str, Any] = config.to_dict()
    for key, value in stored.items():
        section, _, name = key.partition(".")
        if section != "est":
            values[key] = value
        elif values.get(name) is None:
            values[name] = value
    return ", ".join(f"{key}={spelled(value)}" for key, value in values.items())


def log_est_options(model: Any, preset: str) -> None:
    """One INFO line naming the backbone's class, the preset and the options it runs with
    (``model.est_config``, ``model.est_options``), for fairchem's log."""
    logging.getLogger(__name__).info(
        f"EST options ({type(model).__name__}): preset {preset} -> "
        f"{describe_options(model.est_config, model.est_options)}")
