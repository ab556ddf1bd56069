"""Loading checkpoints written before a module's parameters were renamed."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn


def accept_old_keys(module: nn.Module, renames: Mapping[str, str]) -> None:
    """Let ``module.load_state_dict`` read keys under their old names.

    ``renames`` maps an old key start, relative to the module (``"net.3."``), to the new one
    (``"output."``). A ``load_state_dict`` pre-hook renames the matching keys before torch
    compares them with the module's own, so missing and unexpected keys are still reported.
    """

    def rename(state_dict, prefix, *args) -> None:
        for key in [key for key in state_dict if key.startswith(prefix)]:
            rest = key[len(prefix):]
            for old, new in renames.items():
                if rest.startswith(old):
                    state_dict[prefix + new + rest[len(old):]] = state_dict.pop(key)
                    break

    module._register_load_state_dict_pre_hook(rename)
