"""fairchem's hydra model, warm-started from an EquiformerV2 checkpoint at construction.

The config-key route to a warm start (the ``est-fairchem warm-start`` command writes a
checkpoint instead)::

    model:
      name: est_fairchem.models.WarmStartHydraModel
      warm_start:
        checkpoint: path/to/equiformer_v2_checkpoint.pt
        symmetry_breaking: 0.01   # optional
        seed: 0                   # optional
      backbone: {model: est_fairchem.models.EquiformerV2ESTBackbone, ...}
      heads: {...}

Like fairchem's own ``finetune_config.starting_checkpoint``, the model reads the checkpoint
whenever it is built (also when a trained checkpoint of this config is later loaded, whose
weights then replace the warm start), so keep the file where the config says. The checkpoint
may also be an EST one of this config's model, such as the file ``est-fairchem warm-start``
writes: its weights (EMA ones where it holds an EMA state) are then loaded as they are, so
the EquiformerV2 file is needed only once.
"""

from __future__ import annotations

import logging
from typing import Any

from fairchem.core.common.registry import registry
from fairchem.core.models.base import HydraModel

from est_fairchem.checkpoints import (
    load_weights, prediction_state, read_checkpoint, trainable_parameter_names,
)
from est_fairchem.errors import InputError
from est_fairchem.models.equiformer_v2.checkpoint import prediction_weights
from est_fairchem.models.equiformer_v2.warm_start import WarmStartError, est_weight_key
from est_fairchem.models.equiformer_v2.warm_start import warm_start as apply_warm_start

_OPTIONS = {"checkpoint", "symmetry_breaking", "seed"}


@registry.register_model("est_warm_start_hydra")
class WarmStartHydraModel(HydraModel):
    """``HydraModel`` whose EST model starts from EquiformerV2 weights (``warm_start`` option)."""

    def __init__(self, warm_start: dict[str, Any] | str | None = None, **hydra_options: Any) -> None:
        super().__init__(**hydra_options)
        options = {"checkpoint": warm_start} if isinstance(warm_start, str) else dict(warm_start or {})
        unknown = sorted(set(options) - _OPTIONS)
        if unknown or "checkpoint" not in options:
            raise WarmStartError(
                f"model.warm_start: expected keys {sorted(_OPTIONS)} with 'checkpoint' required, "
                f"got {sorted(options)}"
            )
        path = options["checkpoint"]
        if not path:
            raise WarmStartError(
                "model.warm_start.checkpoint is not set: name the EquiformerV2 checkpoint, e.g. "
                "--model.warm_start.checkpoint=PATH on the fairchem command line"
            )
        checkpoint = read_checkpoint(path)
        if est_weight_key(checkpoint["state_dict"]) is not None:
            self._load_est_weights(checkpoint, path)
            return
        weights = prediction_weights(checkpoint, path)
        try:
            apply_warm_start(
                self, weights,
                symmetry_breaking=float(options.get("symmetry_breaking", 0.01)),
                seed=int(options.get("seed", 0)),
            )
        except WarmStartError as err:
            raise WarmStartError(f"model.warm_start.checkpoint={path}: {err}") from None

    def _load_est_weights(self, checkpoint: dict[str, Any], path: str) -> None:
        """Load an EST checkpoint of this model as it is (the weights fairchem predicts with)."""
        from est_fairchem.tools.checkpoint_loading import MAX_LISTED, fit_problems

        names = trainable_parameter_names(self) if checkpoint.get("ema") else None
        weights = prediction_state(checkpoint, names, path)
        problems = fit_problems(self, weights)
        if problems:
            shown = problems[:MAX_LISTED] + (["  ..."] if len(problems) > MAX_LISTED else [])
            raise WarmStartError(
                f"model.warm_start.checkpoint={path}: an EST checkpoint whose weights do not fit "
                f"this config's model ({len(problems)} tensors; name: checkpoint shape, model "
                "shape):\n" + "\n".join(shown))
        try:
            load_weights(self, weights, path)
        except InputError as err:  # an EST checkpoint trained with other EST options
            raise WarmStartError(f"model.warm_start.checkpoint={path}: {err}") from None
        logging.info(f"model.warm_start.checkpoint={path}: an EST checkpoint; its weights are "
                     "loaded as they are")
