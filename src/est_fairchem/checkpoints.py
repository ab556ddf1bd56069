"""Reading fairchem checkpoints: the one place that opens the file, strips DDP prefixes and
picks the weights fairchem predicts with.

fairchem writes ``checkpoint.pt`` (training state: ``step``, ``epoch``, ``optimizer``,
``scheduler``, ``ema``) and ``best_checkpoint.pt`` (weights only), both dicts with a
``state_dict`` whose keys carry ``module.`` prefixes when trained under DDP. It predicts with the
EMA's shadow parameters, copied over the model's trainable parameters in order, when the
config uses EMA (``optim.ema_decay``) and the checkpoint holds an EMA state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from est_fairchem.errors import InputError


class CheckpointError(InputError):
    """A file that is not a fairchem checkpoint, or whose state does not fit the model."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` a fairchem checkpoint on CPU.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: naming ``path``, when torch cannot read it or it holds no ``state_dict``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for files it cannot unpickle
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(
            f"{path}: not a fairchem checkpoint (torch.load cannot read it: {reason})"
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a fairchem checkpoint (expected a dict with a "
                              "'state_dict')")
    return checkpoint


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
