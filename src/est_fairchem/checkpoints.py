"""Reading fairchem checkpoints: the one place that opens a checkpoint file (and the RNG state
file a stopped run writes beside it), strips DDP prefixes, picks the weights fairchem predicts
with and loads weights into a model, naming every key a load leaves out.

fairchem writes ``checkpoint.pt`` (training state: ``step``, ``epoch``, ``optimizer``,
``scheduler``, ``ema``) and ``best_checkpoint.pt`` (weights only), both dicts with a
``state_dict`` whose keys carry ``module.`` prefixes when trained under DDP. It predicts with the
EMA's shadow parameters, copied over the model's trainable parameters in order, when the
config uses EMA (``optim.ema_decay``) and the checkpoint holds an EMA state.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from est_fairchem.errors import InputError, require_file


class CheckpointError(InputError):
    """A file that is not a fairchem checkpoint, or whose state does not fit the model."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` a fairchem checkpoint on CPU.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: naming ``path``, when torch cannot read it or it holds no ``state_dict``.
    """
    path = require_file(path, "checkpoint")
    checkpoint = _torch_load(path, "a fairchem checkpoint")
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a fairchem checkpoint (expected a dict with a "
                              "'state_dict')")
    return checkpoint


def _torch_load(path: str | Path, what: str) -> Any:
    """``torch.load`` on CPU; a ``CheckpointError`` naming ``path`` and ``what`` it should be
    when torch cannot read it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for files it cannot unpickle
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: not {what} (torch.load cannot read it: {reason})") from error


def strip_module_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    """Remove the ``module.`` prefixes DataParallel / DDP add to every key."""
    out = {}
    for key, value in state.items():
        while key.startswith("module."):
            key = key[len("module."):]
        out[key] = value
    return out


def prediction_state(checkpoint: Mapping[str, Any], trainable_names: Sequence[str] | None,
                     path: str | Path = "checkpoint") -> dict[str, Any]:
    """The state dict fairchem predicts with: ``state_dict`` without DDP prefixes, and, when
    ``trainable_names`` is given (the model's trainable parameters in order; None: the config
    uses no EMA) and the checkpoint holds an EMA state, its shadow parameters under those names.

    Raises:
        CheckpointError: the EMA state holds another number of tensors than there are names.
    """
    state = strip_module_prefix(checkpoint["state_dict"])
    ema = checkpoint.get("ema")
    if trainable_names is None or not ema:
        return state
    shadow = list(ema["shadow_params"])
    if len(shadow) != len(trainable_names):
        raise CheckpointError(
            f"{path}: its EMA state holds {len(shadow)} tensors, the model has "
            f"{len(trainable_names)} trainable parameters: not a checkpoint of this model")
    state.update({name: value.detach().clone() for name, value in zip(trainable_names, shadow)})
    return state


def trainable_parameter_names(model: torch.nn.Module) -> list[str]:
    """The names of ``model``'s trainable parameters, in the order fairchem's EMA keeps them."""
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


def load_weights(model: torch.nn.Module, state: Mapping[str, Any], source: str | Path) -> None:
    """``model.load_state_dict(state, strict=False)`` that logs a warning naming every key
    ``state`` lacks and every key the model has no place for (``source``: the file the weights
    come from). Checks of what must fit come first
    (:mod:`est_fairchem.tools.checkpoint_loading`); this covers what they let through, such as
    buffers a checkpoint need not hold, so nothing is left out silently."""
    result = model.load_state_dict(state, strict=False)
    for keys, what in ((result.missing_keys, "not in the checkpoint, left as built"),
                       (result.unexpected_keys, "without a place in the model, ignored")):
        if keys:
            logging.warning(f"{source}: {len(keys)} key(s) {what}: {', '.join(keys)}")


def write_rng_state(path: str | Path, step: int, states: list[Any]) -> None:
    """Write every rank's RNG ``states`` at ``step`` to ``path`` (beside it first, then renamed
    into place, so a kill during the write leaves no partial file)."""
    partial = f"{path}.partial"
    torch.save({"step": step, "states": states}, partial)
    os.replace(partial, path)


def read_rng_state(path: str | Path) -> dict[str, Any]:
    """``{"step": int, "states": [one per rank]}`` as :func:`write_rng_state` wrote it.

    Raises:
        CheckpointError: naming ``path``, when torch cannot read it or it holds something else.
    """
    saved = _torch_load(path, "an RNG state file")
    if not isinstance(saved, dict) or not {"step", "states"} <= set(saved):
        raise CheckpointError(f"{path}: not an RNG state file (expected a dict with 'step' and "
                              "'states')")
    return saved
