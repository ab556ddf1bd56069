"""An EquiformerV2 fairchem checkpoint's model (old and new config layouts) and the weights
fairchem predicts with (read by :mod:`est_fairchem.checkpoints`).

fairchem predicts with the EMA weights when a checkpoint holds an EMA state (``checkpoint.pt``
of runs with ``optim.ema_decay``); ``best_checkpoint.pt`` already stores them as its weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from est_fairchem.checkpoints import prediction_state, trainable_parameter_names
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


def prediction_weights(checkpoint: dict, path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict fairchem predicts with for the checkpoint's own model: ``state_dict``,
    with the EMA shadow in place of the trainable parameters when the checkpoint holds one.
    The parameter names, in the EMA's order, come from the model the checkpoint's own config
    builds (no weights are loaded into it). (For a model built from another config:
    :func:`est_fairchem.tools.checkpoint_loading.config_model_weights`.)"""
    from est_fairchem.tools.model_from_config import build_model

    if not checkpoint.get("ema"):
        return prediction_state(checkpoint, None, path)
    names = trainable_parameter_names(build_model({"model": model_config(checkpoint)}))
    return prediction_state(checkpoint, names, path)
