"""Recomputing a block in backward instead of keeping its activations (``recompute_update``)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def recomputed_in_backward(function: Callable[..., torch.Tensor], *args) -> torch.Tensor:
    """``function(*args)``, keeping only ``args`` for backward and running it again there
    (``torch.utils.checkpoint``, non-reentrant; the random state is restored, so random grid
    rotations are redrawn identically).

    Early stop is off: it ends the recomputation by raising from a saved-tensor hook, which
    e3nn's TorchScript-compiled modules (Equiformer's linears) turn into a bare RuntimeError.
    """
    from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

    with set_checkpoint_early_stop(False):
        return checkpoint(function, *args, use_reentrant=False)
