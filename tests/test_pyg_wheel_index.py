"""``make install PYG_WHEELS=auto``: the PyG wheel index worked out from the installed torch."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts/pyg_wheel_index.py"


def _module():
    spec = importlib.util.spec_from_file_location("pyg_wheel_index", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("torch_version,cuda,expected", [
    ("2.4.1+cu121", "12.1", "https://data.pyg.org/whl/torch-2.4.0+cu121.html"),
    ("2.4.0", "11.8", "https://data.pyg.org/whl/torch-2.4.0+cu118.html"),
    ("2.4.1+cpu", None, "https://data.pyg.org/whl/torch-2.4.0+cpu.html"),
    ("2.5.0a0+git1234", "12.4", "https://data.pyg.org/whl/torch-2.5.0+cu124.html"),
])
def test_index_names_the_minor_release_and_the_build(torch_version, cuda, expected):
    assert _module().pyg_wheel_index(torch_version, cuda) == expected


def test_unreadable_torch_version_is_named():
    with pytest.raises(ValueError, match="torch version 'nightly'"):
        _module().pyg_wheel_index("nightly", None)


def test_script_prints_the_index_of_this_environment():
    import torch

    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                         check=True).stdout.strip()
    build = f"cu{torch.version.cuda.replace('.', '')}" if torch.version.cuda else "cpu"
    major, minor = torch.__version__.split(".")[:2]
    assert out == f"https://data.pyg.org/whl/torch-{major}.{minor}.0+{build}.html"
