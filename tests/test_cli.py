"""The `est-fairchem` console script: every subcommand documents itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SUBCOMMANDS = {
    "make-demo-data": ["--task", "--out", "--seed", "--systems", "--overwrite"],
    "count-params": ["configs"],
    "demo": ["--config", "--data", "--run-dir"],
}


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("est-fairchem")
    return [str(script)] if script.exists() else [shutil.which("est-fairchem") or "est-fairchem"]


def test_top_level_help_lists_subcommands():
    out = subprocess.run([*_cli(), "--help"], capture_output=True, text=True, check=True).stdout
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name,options", SUBCOMMANDS.items())
def test_subcommand_help(name, options):
    out = subprocess.run([*_cli(), name, "--help"], capture_output=True, text=True, check=True).stdout
    for option in options:
        assert option in out


def test_missing_config_names_the_file(tmp_path):
    missing = tmp_path / "nope.yml"
    result = subprocess.run([*_cli(), "count-params", str(missing)], capture_output=True, text=True)
    assert result.returncode != 0
    assert f"config file not found: {missing}" in result.stderr
