"""Read and compare the training state in fairchem checkpoints (``checkpoint.pt``).

fairchem's ``checkpoint.pt`` (``save(training_state=True)``) holds ``step``, ``epoch``, the
model ``state_dict`` (``module.``-prefixed under DDP), ``optimizer`` (torch state dict: per
parameter ``step``, ``exp_avg``, ``exp_avg_sq`` for Adam/AdamW), ``scheduler`` (the torch LR
scheduler's state dict, None for ``scheduler: Null``) and ``ema`` (fairchem's
``ExponentialMovingAverage`` state: ``shadow_params`` ...). Used to check that a resumed run
continues exactly where the stopped one left off, and that multi-process training matches one
process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from est_fairchem.checkpoints import read_checkpoint, strip_module_prefix


@dataclass(frozen=True)
class TrainingState:
    """The counters of a training checkpoint, and the state itself."""

    step: int
    epoch: float
    optimizer_steps: tuple[int, ...]
    """Distinct per-parameter ``step`` counts of the optimizer (one value when consistent)."""
    scheduler_steps: int | None
    """The LR scheduler's ``last_epoch`` (its step count), None without a scheduler."""
    learning_rates: tuple[float, ...]
    """The scheduler's last learning rate per parameter group."""
    has_ema: bool
    raw: dict[str, Any]


def load_training_state(path: Path) -> TrainingState:
    """Read ``path``; a clear error if it is not a fairchem checkpoint with training state."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    missing = [k for k in ("step", "epoch", "state_dict", "optimizer") if k not in checkpoint]
    if missing:
        raise ValueError(f"{path} holds no training state (missing {missing}); fairchem writes it "
                         "to checkpoint.pt, not to best_checkpoint.pt")
    optimizer_steps = tuple(sorted({
        int(state["step"]) for state in checkpoint["optimizer"]["state"].values() if "step" in state
    }))
    scheduler = checkpoint.get("scheduler")
    return TrainingState(
        step=int(checkpoint["step"]),
        epoch=float(checkpoint["epoch"]),
        optimizer_steps=optimizer_steps,
        scheduler_steps=None if scheduler is None else int(scheduler["last_epoch"]),
        learning_rates=tuple(float(lr) for lr in (scheduler or {}).get("_last_lr", ())),
        has_ema=checkpoint.get("ema") is not None,
        raw=checkpoint,
    )


def model_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The floating-point model tensors, without DDP's ``module.`` prefix (torch extra state,
    such as an EST backbone's stored options, is left out)."""
    return {
        name: tensor
        for name, tensor in strip_module_prefix(checkpoint["state_dict"]).items()
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
    }


def _optimizer_tensors(checkpoint: dict[str, Any]) -> list[torch.Tensor]:
    state = checkpoint["optimizer"]["state"]
    return [
        value for key in sorted(state) for _, value in sorted(state[key].items())
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() > 0
    ]


def _ema_tensors(checkpoint: dict[str, Any]) -> list[torch.Tensor]:
    ema = checkpoint.get("ema")
    return [] if ema is None else list(ema["shadow_params"])


def max_abs_differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """Largest absolute difference between two checkpoints' model weights, optimizer tensors
    (Adam moments, momentum buffers) and EMA weights: ``{"model": .., "optimizer": ..,
    "ema": ..}``. Raises if they do not hold the same tensors."""
    wa, wb = model_weights(a), model_weights(b)
    if wa.keys() != wb.keys():
        raise ValueError(f"different model tensors: {sorted(wa.keys() ^ wb.keys())[:5]}")
    result = {"model": max((wa[k] - wb[k]).abs().max().item() for k in wa)}
    for name, get in (("optimizer", _optimizer_tensors), ("ema", _ema_tensors)):
        ta, tb = get(a), get(b)
        if len(ta) != len(tb) or any(x.shape != y.shape for x, y in zip(ta, tb)):
            raise ValueError(f"the checkpoints' {name} states differ in layout")
        result[name] = max(((x - y).abs().max().item() for x, y in zip(ta, tb)), default=0.0)
    return result
