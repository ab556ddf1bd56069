"""An EquiformerV2 fairchem checkpoint's model (old and new config layouts) and the weights
fairchem predicts with (read by :mod:`est_fairchem.checkpoints`).

fairchem predicts with the EMA weights when a checkpoint holds an EMA state (``checkpoint.pt``
of runs with ``optim.ema_decay``); ``best_checkpoint.pt`` already stores them as its weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from est_fairchem.checkpoints import prediction_state, strip_module_prefix, trainable_parameter_names
from est_fairchem.models.equiformer_v2.warm_start import WarmStartError


def model_config(checkpoint: dict) -> dict:
    """The checkpoint's ``model`` section, old (``model`` + ``model_attributes``) or new."""
    config = checkpoint.get("config", {})
    model = config.get("model")
    if isinstance(model, str):  # configs of fairchem's published pre-hydra checkpoints
        return {"name": model, **copy.deepcopy(config.get("model_attributes", {}))}
    if not isinstance(model, dict) or "name" not in model:
        raise WarmStartError("the checkpoint's config has no 'model' section with a 'name'")
    return copy.deepcopy(model)


def build_checkpoint_model(checkpoint: dict) -> torch.nn.Module:
    """The checkpoint's model, built through fairchem's registry, with its saved weights."""
    from fairchem.core.common.registry import registry
    from fairchem.core.common.utils import setup_imports

    setup_imports()
    config = model_config(checkpoint)
    model = registry.get_model_class(config.pop("name"))(**config)
    model.load_state_dict(strip_module_prefix(checkpoint["state_dict"]), strict=False)
    return model


def prediction_weights(checkpoint: dict, path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict fairchem predicts with: ``state_dict``, with the EMA shadow if present
    (the parameter names from the checkpoint's own model)."""
    if not checkpoint.get("ema"):
        return prediction_state(checkpoint, None, path)
    names = trainable_parameter_names(build_checkpoint_model(checkpoint))
    return prediction_state(checkpoint, names, path)
