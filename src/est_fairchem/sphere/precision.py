"""Full-precision regions under ``torch.autocast`` (fairchem's ``--amp``).

The SH <-> grid transforms, grid rotations, spherical attention and the expert gate run with
autocast disabled, in float32, and return float32, as autocast does for the ops on its float32
list; outside autocast nothing changes (see :mod:`est_fairchem.sphere.transform`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_AUTOCAST_DEVICES = ("cpu", "cuda")


def _autocast_on(device: torch.device) -> bool:
    return device.type in _AUTOCAST_DEVICES and torch.is_autocast_enabled(device.type)


def full_precision_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype of a full-precision region for ``x``: float32 if ``x`` is float16/bfloat16
    and autocast is on for its device, else ``x.dtype`` (outside autocast nothing changes).

    Call it before entering :func:`full_precision`, inside which autocast reads as off.
    """
    if x.dtype in (torch.float16, torch.bfloat16) and _autocast_on(x.device):
        return torch.float32
    return x.dtype


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Disable ``torch.autocast`` for ``device`` inside the block (no-op where it cannot be on).

    Cast the block's inputs to :func:`full_precision_dtype` (taken before the block), so
    half-precision activations under autocast are computed in float32, as autocast does for
    the ops on its float32 list.
    """
    if _autocast_on(device):
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    else:
        yield
