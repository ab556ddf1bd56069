"""The graph statistics a model is built with (``avg_num_nodes``, ``avg_degree``): checked
when it is built and stored in its checkpoints, like the EST options.

Both numbers scale the models' sums (the energy head's sum over atoms by
1/sqrt(avg_num_nodes), the messages' sum over neighbours by 1/sqrt(avg_degree)), so a
checkpoint loaded with other values than it was trained with computes another function
without any weight changing shape. Each module that reads one keeps the values it uses in its
state dict (torch's extra state, ``{"graph_statistics": {"avg_degree": 23.4}}``); a load
compares them with the module's own and refuses a difference naming the key and both values
(:class:`StoredGraphStatistics`; the EST backbones add it to their EST options check, with its
``est.allow_option_change``). Checkpoints from before the statistics were stored load
without the check. ``est-fairchem graph-stats CONFIG`` counts both on a config's data.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from est_fairchem.errors import InputError

MEANING = {"avg_num_nodes": "atoms per structure, averaged over the training data",
           "avg_degree": "neighbours per atom within the cutoff, averaged over the training data"}

_STATE_KEY = "graph_statistics"


def check_graph_statistics(**values: Any) -> None:
    """Raise :class:`InputError` for a value of ``avg_num_nodes`` / ``avg_degree`` that is not
    a positive finite number (None passes: the backbone's default applies)."""
    for key, value in values.items():
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value <= 0:
            raise InputError(
                f"{key}={value!r}: expected a positive number ({MEANING[key]}; "
                "`est-fairchem graph-stats CONFIG` counts it on your training data)")


def config_key(prefix: str, key: str) -> str:
    """The config key of a state-dict ``prefix``'s statistic: ``backbone.`` ->
    ``model.backbone.avg_degree``, ``output_heads.energy.`` -> ``model.heads.energy...``."""
    while prefix.startswith("module."):
        prefix = prefix[len("module."):]
    if prefix.startswith("output_heads."):
        prefix = "heads." + prefix[len("output_heads."):]
    return f"model.{prefix}{key}"


def statistic_differences(state: Any, configured: Mapping[str, float],
                          prefix: str = "") -> dict[str, tuple[float, float]]:
    """``{config key: (trained, configured)}`` for each statistic the extra ``state`` of a
    checkpoint holds with another value than ``configured`` (none stored: no difference)."""
    trained = state.get(_STATE_KEY) if isinstance(state, Mapping) else None
    if not isinstance(trained, Mapping):
        return {}
    return {config_key(prefix, key): (float(trained[key]), float(value))
            for key, value in configured.items()
            if key in trained and not math.isclose(float(trained[key]), float(value),
                                                   rel_tol=1e-6)}


class StoredGraphStatistics:
    """Mixin for ``nn.Module``: stores ``self.graph_statistics`` (set it in ``__init__``: the
    values the module computes with) in the state dict and refuses a load whose stored values
    differ, naming the key and both values."""

    graph_statistics: dict[str, float]

    def get_extra_state(self) -> dict[str, Any]:
        return {_STATE_KEY: dict(self.graph_statistics)}

    def set_extra_state(self, state: Any) -> None:
        differences = statistic_differences(state, self.graph_statistics,
                                            getattr(self, "_loading_prefix", ""))
        if differences:
            listed = "; ".join(f"{key}: trained {old:g}, configured {new:g}"
                               for key, (old, new) in differences.items())
            raise InputError(
                f"the checkpoint was trained with other graph statistics than the config's "
                f"model ({listed}); they scale the model's sums. Configure the trained values")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        self._loading_prefix = prefix
        super()._load_from_state_dict(  # type: ignore[misc]
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        key = f"{prefix}_extra_state"
        if key not in state_dict and key in missing_keys:
            missing_keys.remove(key)  # a checkpoint from before the values were stored
