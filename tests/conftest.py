from __future__ import annotations

import pytest
import torch


@pytest.fixture
def float64():
    """Build and run in float64 (transform buffers are made in the default dtype's precision)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
