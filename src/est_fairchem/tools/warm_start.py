"""``est-fairchem warm-start``: an EquiformerV2 checkpoint -> an EST checkpoint to train from.

The written file is a fairchem checkpoint at epoch 0, step 0 with no optimizer or scheduler
state, so ``fairchem --mode train --config-yml EST_CONFIG --checkpoint FILE`` starts a fresh
optimisation from the warm-started weights. It carries the EquiformerV2 run's normalizers and
element references (the targets are scaled as they were) and, when the EST config uses EMA,
an EMA state starting at these weights (fairchem drops EMA when a checkpoint has none).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from est_fairchem.checkpoints import read_checkpoint
from est_fairchem.data.output_folder import check_output_file
from est_fairchem.models.equiformer_v2.checkpoint import prediction_weights
from est_fairchem.models.equiformer_v2.warm_start import (
    WarmStartError, check_is_eqv2_state, warm_start,
)
from est_fairchem.tools.model_from_config import build_model, load_config


_WARM_START_MODELS = ("WarmStartHydraModel", "est_warm_start_hydra")


def is_warm_start_config(config: dict) -> bool:
    """True for a config whose model is ``WarmStartHydraModel`` (the config-key route)."""
    name = str((config.get("model") or {}).get("name", ""))
    return name.rsplit(".", 1)[-1] in _WARM_START_MODELS


def plain_hydra_config(config: dict) -> dict:
    """``config`` with a ``WarmStartHydraModel`` model as fairchem's plain hydra model (no
    ``warm_start`` key): the model this command warm-starts itself and stores in its file."""
    if not is_warm_start_config(config):
        return config
    plain = copy.deepcopy(config)
    plain["model"].pop("warm_start", None)
    plain["model"]["name"] = "hydra"
    return plain


def ema_state(model: torch.nn.Module, decay: float) -> dict:
    """fairchem's ``ExponentialMovingAverage.state_dict()`` of an EMA starting at ``model``."""
    return {
        "decay": decay,
        "num_updates": None,
        "shadow_params": [p.detach().clone() for p in model.parameters() if p.requires_grad],
        "collected_params": [],
    }


def warm_start_checkpoint(
    eqv2_checkpoint: Path, est_config: Path, out: Path, symmetry_breaking: float = 0.01,
    seed: int = 0, overwrite: bool = False,
) -> dict:
    """Write the warm-started EST checkpoint to ``out``; return a summary of what was done."""
    out = Path(out)
    check_output_file(out, protect=(eqv2_checkpoint, est_config), overwrite=overwrite)
    checkpoint = read_checkpoint(eqv2_checkpoint)
    try:  # before prediction_weights, which builds the checkpoint's own model
        check_is_eqv2_state(checkpoint["state_dict"])
    except WarmStartError as err:
        raise WarmStartError(f"--from {eqv2_checkpoint}: {err}") from None
    weights = prediction_weights(checkpoint, eqv2_checkpoint)
    given = load_config(est_config)
    config = plain_hydra_config(given)
    torch.manual_seed(seed)
    model = build_model(config)
    try:
        warm_start(model, weights, symmetry_breaking=symmetry_breaking, seed=seed)
    except WarmStartError as err:
        raise WarmStartError(f"--from {eqv2_checkpoint}: {err}") from None
    ema_decay = (config.get("optim") or {}).get("ema_decay")
    state = {
        "state_dict": model.state_dict(),
        "normalizers": checkpoint.get("normalizers", {}),
        "elementrefs": checkpoint.get("elementrefs", {}),
        "config": config,
        "val_metrics": None,
        "amp": None,
        "epoch": 0,
        "step": 0,
        "ema": ema_state(model, float(ema_decay)) if ema_decay else None,
        "warm_start": {
            "from": str(eqv2_checkpoint),
            "used_ema_weights": bool(checkpoint.get("ema")),
            "symmetry_breaking": symmetry_breaking,
            "seed": seed,
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        torch.save(state, partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return {
        "out": str(out),
        "parameters": sum(p.numel() for p in model.parameters()),
        "used_ema_weights": bool(checkpoint.get("ema")),
        "normalizers": sorted(state["normalizers"]),
        "ema": bool(ema_decay),
        "warm_start_config": is_warm_start_config(given),
    }
