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
weights then replace the warm start), so keep the file where the config says.
"""

from __future__ import annotations

from typing import Any

from fairchem.core.common.registry import registry
from fairchem.core.models.base import HydraModel

from est_fairchem.checkpoints import read_checkpoint
from est_fairchem.models.equiformer_v2.checkpoint import prediction_weights
from est_fairchem.models.equiformer_v2.warm_start import WarmStartError
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
        weights = prediction_weights(read_checkpoint(path), path)
        try:
            apply_warm_start(
                self, weights,
                symmetry_breaking=float(options.get("symmetry_breaking", 0.01)),
                seed=int(options.get("seed", 0)),
            )
        except WarmStartError as err:
            raise WarmStartError(f"model.warm_start.checkpoint={path}: {err}") from None
