"""Read an EquiformerV2 fairchem checkpoint: the weights fairchem predicts with, and its model.

fairchem predicts with the EMA weights when a checkpoint holds an EMA state (``checkpoint.pt``
of runs with ``optim.ema_decay``); ``best_checkpoint.pt`` already stores them as its weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from est_fairchem.models.warm_start import WarmStartError, strip_module_prefix


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load`` a fairchem checkpoint on CPU; clear errors for missing or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for files it cannot unpickle
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WarmStartError(
            f"{path}: not a fairchem checkpoint (torch.load cannot read it: {reason})"
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise WarmStartError(f"{path}: not a fairchem checkpoint (expected a dict with a "
                             "'state_dict')")
    return checkpoint


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
    """The state dict fairchem predicts with: ``state_dict``, with the EMA shadow if present."""
    state = strip_module_prefix(checkpoint["state_dict"])
    ema = checkpoint.get("ema")
    if not ema:
        return state
    model = build_checkpoint_model(checkpoint)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    shadow = ema["shadow_params"]
    if len(shadow) != len(names):
        raise WarmStartError(
            f"{path}: the EMA state holds {len(shadow)} tensors, the model {len(names)} parameters"
        )
    state = dict(state)
    state.update({name: value.detach().clone() for name, value in zip(names, shadow)})
    return state
