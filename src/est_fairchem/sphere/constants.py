"""Constants derived from a module's fixed buffers, computed once per dtype and device.

The EST layers keep their fixed matrices (transforms, Wigner couplings, the attention's logit
bias) as float64 buffers and use them in the features' dtype. Casting or combining them anew
in every layer of every step costs one launched kernel each on a GPU, and at OC20 batch sizes
a GPU training step is bound by how many operations the host dispatches, not by their
arithmetic. :func:`memoized` keeps such a derived tensor on its module instead.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch
from torch import nn

_CACHE_ATTRIBUTE = "_memoized_constants"


def memoized(
    module: nn.Module, name: str, sources: tuple[torch.Tensor, ...], key: Hashable,
    make: Callable[[], torch.Tensor],
) -> torch.Tensor:
    """``make()``, computed without gradient and kept on ``module`` under ``name``.

    It is recomputed when ``key`` (e.g. the dtype) changes, or when one of ``sources`` (the
    buffers it is derived from) is replaced or modified in place (a move to another device,
    ``load_state_dict``). One tensor is kept per name. Nothing is kept in inference mode: an
    inference tensor could not be saved for backward by a later training step.
    """
    stamp = (key, tuple((t.device, t.data_ptr(), t._version) for t in sources))
    cache = module.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
    entry = cache.get(name)
    if entry is not None and entry[0] == stamp:
        return entry[1]
    with torch.no_grad():
        value = make()
    if not torch.is_inference_mode_enabled():
        cache[name] = (stamp, value)
    return value
