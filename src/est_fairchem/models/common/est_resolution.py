"""The ``est:`` block of a config resolved once, the same way for every backbone, into the
complete :class:`~est_fairchem.models.common.est_config.ESTConfig` its blocks are built from,
its log line names and its checkpoints store (``trained_options``).

    preset (est_preset.resolve_preset) -> validation (ESTConfig.from_mapping)
    -> the backbone's own checks -> widths and repulsion filled in (ESTConfig.resolved)

A backbone passes only its sizes (its degree, the channels its grid carries, its feed-forward
width); no backbone computes an option's default. Then, in every backbone: the stored options
(``trained_options.function_options``), the log line (``est_preset.log_est_options``), the
blocks.
"""

from __future__ import annotations

from typing import Any

from est_fairchem.models.common.est_config import ESTConfig, ESTConfigError
from est_fairchem.models.common.est_preset import resolve_preset


def resolve_est_options(est: Any, backbone: str, lmax: int, grid_channels: int,
                        ffn_hidden_channels: int | None = None) -> ESTConfig:
    """The complete EST options of ``backbone`` (one of ``est_preset.BACKBONES``).

    Args:
        est: the config's ``est:`` block (a mapping, or None).
        lmax: the backbone's degree L.
        grid_channels: EquiformerV2: ``sphere_channels``; Equiformer: the largest multiplicity
            of its degrees above 0 (C_F when ``est.fourier_channels`` is null); pure EST:
            ``channels``.
        ffn_hidden_channels: EquiformerV2's feed-forward width (its steerable experts default
            to half of it).
    Raises:
        ESTConfigError: naming the first option that is invalid, or does not apply to
            ``backbone``.
    """
    preset_channels = None if backbone == "equiformer" else grid_channels
    config = ESTConfig.from_mapping(
        resolve_preset(est, backbone, lmax, preset_channels, ffn_hidden_channels), lmax=lmax)
    if backbone == "equiformer_v2":
        if config.fourier_channels not in (None, grid_channels):
            raise ESTConfigError(
                f"est.fourier_channels={config.fourier_channels}: EquiformerV2's grid "
                f"carries sphere_channels={grid_channels}; leave it null")
        return config.resolved(grid_channels, max(1, ffn_hidden_channels // 2), grid_channels)
    if backbone == "equiformer":
        if config.steerable_hidden_channels is not None:
            raise ESTConfigError("est.steerable_hidden_channels: not used by Equiformer; its "
                                 "steerable experts take irreps_mlp_mid")
        fourier_channels = config.fourier_channels or grid_channels
        return config.resolved(fourier_channels, fourier_channels=fourier_channels)
    for key in ("fourier_channels", "steerable_hidden_channels"):
        if getattr(config, key) is not None:
            raise ESTConfigError(f"est.{key}={getattr(config, key)!r}: not used by "
                                 "ESTBackbone (the grid carries `channels`; steerable "
                                 "experts take `irreps_mlp_mid`); leave it null")
    if grid_channels % config.num_heads != 0:
        raise ESTConfigError(f"est.num_heads={config.num_heads}: must divide "
                             f"channels={grid_channels}")
    return config.resolved(grid_channels)
