"""The EST options a checkpoint was trained with, stored in it and checked when it is loaded.

Most ``est:`` options change the function the weights compute without changing any weight's
shape (``num_points``, ``sampling``, ``grid_frame``, ...), so a checkpoint would load silently
into a model configured otherwise and predict something else. Each EST backbone therefore
keeps its options in the model's state dict (torch's ``get_extra_state``:
``backbone._extra_state = {"est_options": {...}}``), which every fairchem checkpoint stores
and every load (``--checkpoint`` in train / predict / validate / run-relaxations, the
OCPCalculator, ``est-fairchem check-equivariance``) passes back through
``load_state_dict``. There they are compared with the model's own options, and a difference
is refused with an :class:`~est_fairchem.errors.InputError` listing each differing key,
unless ``est.allow_option_change: true`` (then a warning). Checkpoints written before the
options were stored load without the check. The graph statistics (``avg_num_nodes``,
``avg_degree``) are stored and compared beside them
(:mod:`~est_fairchem.models.common.graph_statistics`).

Compared: every :class:`~est_fairchem.models.common.est_config.ESTConfig` field except those that
leave eval-mode predictions unchanged (:data:`UNCOMPARED`), and the pure EST's ``message:``
options, with null widths resolved to the values the backbone uses and ``repulsion_steps``
only for Fibonacci points.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from typing import Any, Mapping

from est_fairchem.errors import InputError
from est_fairchem.models.common.est_config import ESTConfig
from est_fairchem.models.common.graph_statistics import (
    StoredGraphStatistics,
    statistic_differences,
)

UNCOMPARED = ("recompute_update", "random_grid_rotation", "allow_option_change")
"""Options that change cost or training only: recomputation in backward, training-time grid
rotations (never applied in eval), and the flag itself."""

_STATE_KEY = "est_options"


def function_options(config: Any, section: str = "est", **resolved: int) -> dict[str, Any]:
    """The options of the dataclass ``config`` (the ``section:`` block: an ``ESTConfig``,
    the pure EST's ``MessageConfig``) that define the function, as ``{"est.num_points": 64,
    ...}``, with each null field named in ``resolved`` (e.g. ``spherical_hidden_channels=32``)
    replaced by the value the backbone uses."""
    options = {f.name: getattr(config, f.name) for f in fields(config)
               if f.name not in UNCOMPARED}
    for key, value in resolved.items():
        if options[key] is None:
            options[key] = value
    if options.get("sampling", "fibonacci") != "fibonacci":
        options["repulsion_steps"] = 0  # only refines the Fibonacci lattice
    return {f"{section}.{key}": value for key, value in options.items()}


def option_differences(trained: Mapping[str, Any],
                       configured: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (trained, configured)}`` for every key both hold with different values (a key
    on one side only is an option another version of this package added or removed; it is
    not compared)."""
    keys = sorted(set(trained) & set(configured))
    return {key: (trained[key], configured[key]) for key in keys
            if trained[key] != configured[key]}


def spelled(value: Any) -> str:
    """An option's value as YAML writes it (``null``, ``true``, ``64``)."""
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def describe_differences(differences: Mapping[str, tuple[Any, Any]]) -> str:
    """``est.num_points: trained 16, configured 24; ...`` (YAML spelling of the values)."""
    return "; ".join(f"{key}: trained {spelled(old)}, configured {spelled(new)}"
                     for key, (old, new) in differences.items())


class StoredESTOptions(StoredGraphStatistics):
    """Mixin for ``nn.Module`` backbones: stores ``self.est_options`` (set it in ``__init__``,
    from :func:`function_options` of each options block) and ``self.graph_statistics``
    (:mod:`~est_fairchem.models.common.graph_statistics`) in the state dict and checks them on
    load against the model's own, refusing differences unless
    ``self.est_config.allow_option_change``."""

    est_options: dict[str, Any]
    est_config: ESTConfig

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), _STATE_KEY: dict(self.est_options)}

    def set_extra_state(self, state: Any) -> None:
        trained = state.get(_STATE_KEY) if isinstance(state, Mapping) else None
        differences = option_differences(trained or {}, self.est_options)
        differences.update(statistic_differences(state, getattr(self, "graph_statistics", {}),
                                                 getattr(self, "_loading_prefix", "")))
        if not differences:
            return
        listed = describe_differences(differences)
        if self.est_config.allow_option_change:
            logging.warning(f"loading a checkpoint trained with other EST options ({listed}); "
                            "est.allow_option_change is true, so its predictions will differ "
                            "from the trained model's")
            return
        raise InputError(
            f"the checkpoint was trained with other options than the config's model.backbone "
            f"({listed}); they change what the weights compute. Configure the trained values, "
            "or set model.backbone.est.allow_option_change: true to load it anyway")
