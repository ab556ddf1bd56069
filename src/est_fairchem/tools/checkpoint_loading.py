"""Load a fairchem checkpoint into a model built from a config, with the weights fairchem
predicts with, and one :class:`~est_fairchem.errors.InputError` for anything that does not fit.

fairchem's ``--mode predict`` loads the checkpoint's ``state_dict`` into the model its config
builds and then, when the config has ``optim.ema_decay`` and the checkpoint an EMA state,
copies the EMA's shadow parameters over the model's trainable parameters, in order. The same
is done here. A file torch cannot read, or one holding something other than a checkpoint,
and weights of other shapes or names are refused listing every mismatched tensor (name,
checkpoint shape, model shape), as ``est-fairchem warm-start`` lists them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from est_fairchem.checkpoints import (
    load_weights, prediction_state, read_checkpoint, trainable_parameter_names,
)
from est_fairchem.errors import InputError
from est_fairchem.nn.renamed_keys import current_keys

MAX_LISTED = 60


def config_model_weights(model: torch.nn.Module, checkpoint: dict, config: dict,
                         path: str | Path) -> dict[str, object]:
    """The weights fairchem's ``--mode predict`` loads into ``model``, built from ``config``
    (not from the checkpoint's own config): the checkpoint's state dict (DDP ``module.``
    prefixes removed) with, when ``config`` uses EMA (``optim.ema_decay``) and the checkpoint
    holds an EMA state, the shadow parameters in place of ``model``'s trainable parameters.
    (:func:`est_fairchem.models.equiformer_v2.checkpoint.prediction_weights` is the same for
    the checkpoint's own model.)"""
    uses_ema = bool((config.get("optim") or {}).get("ema_decay"))
    return prediction_state(checkpoint, trainable_parameter_names(model) if uses_ema else None,
                            path)


def fit_problems(model: torch.nn.Module, weights: dict[str, object]) -> list[str]:
    """One line per tensor of ``weights`` whose shape differs from ``model``'s, per model
    parameter the weights lack, and per weight the model has no place for (keys of renamed
    parameters under their current names: ``nn.renamed_keys``)."""
    weights = current_keys(model, weights)
    target = model.state_dict()
    parameters = {name for name, _ in model.named_parameters()}
    problems = []
    for key, value in weights.items():
        if not isinstance(value, torch.Tensor):
            continue  # torch extra state, such as the EST options
        if key not in target:
            problems.append(f"  '{key}' {tuple(value.shape)}: no place in the model")
        elif target[key].shape != value.shape:
            problems.append(f"  {key}: checkpoint {tuple(value.shape)}, "
                            f"model {tuple(target[key].shape)}")
    problems += [f"  {key} {tuple(target[key].shape)}: not in the checkpoint"
                 for key in target if key in parameters and key not in weights]
    return problems


def load_prediction_weights(model: torch.nn.Module, checkpoint_path: str | Path, config: dict,
                            config_path: str | Path) -> dict:
    """Load into ``model`` (built from ``config``, read from ``config_path``) the weights
    fairchem predicts with from the checkpoint at ``checkpoint_path``; return the checkpoint.

    Raises:
        FileNotFoundError: no file at ``checkpoint_path``.
        InputError: not a fairchem checkpoint; its tensors do not fit the model (all listed);
            an EST checkpoint trained with other EST options (``trained_options``).
    """
    checkpoint = read_checkpoint(checkpoint_path)
    weights = config_model_weights(model, checkpoint, config, checkpoint_path)
    problems = fit_problems(model, weights)
    if problems:
        shown = problems[:MAX_LISTED] + (["  ..."] if len(problems) > MAX_LISTED else [])
        raise InputError(
            f"{checkpoint_path}: its weights do not fit the model of {config_path} "
            f"({len(problems)} tensors; name: checkpoint shape, model shape):\n" + "\n".join(shown))
    try:
        load_weights(model, weights, checkpoint_path)
    except InputError as error:
        raise InputError(f"{checkpoint_path}: {error}") from None
    return checkpoint
