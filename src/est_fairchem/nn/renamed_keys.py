"""Loading checkpoints written before a module's parameters were renamed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

_RENAMES = "_old_key_renames"


def _rename(state_dict: dict[str, Any], prefix: str, renames: Mapping[str, str]) -> None:
    """Rename, in place, the keys of ``state_dict`` under ``prefix`` that start with an old
    name of ``renames``."""
    for key in [key for key in state_dict if key.startswith(prefix)]:
        rest = key[len(prefix):]
        for old, new in renames.items():
            if rest.startswith(old):
                state_dict[prefix + new + rest[len(old):]] = state_dict.pop(key)
                break


def accept_old_keys(module: nn.Module, renames: Mapping[str, str]) -> None:
    """Let ``module.load_state_dict`` read keys under their old names.

    ``renames`` maps an old key start, relative to the module (``"net.3."``), to the new one
    (``"output."``). A ``load_state_dict`` pre-hook renames the matching keys before torch
    compares them with the module's own, so missing and unexpected keys are still reported;
    :func:`current_keys` applies the same renames without loading.
    """
    renames = dict(renames)
    module.__dict__.setdefault(_RENAMES, {}).update(renames)

    def rename(state_dict, prefix, *args) -> None:
        _rename(state_dict, prefix, renames)

    module._register_load_state_dict_pre_hook(rename)


def current_keys(model: nn.Module, state: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``state`` (a state dict for ``model``) with every old key renamed as
    ``model.load_state_dict`` would rename it, to compare with ``model.state_dict()``."""
    renamed = dict(state)
    for name, module in model.named_modules():  # parents first, as load_state_dict visits them
        renames = module.__dict__.get(_RENAMES)
        if renames:
            _rename(renamed, f"{name}." if name else "", renames)
    return renamed
