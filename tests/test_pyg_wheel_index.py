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


class _Pip:
    """Runs nothing: answers each pip command as PyG's index would (wheels there or not) and
    records the commands, to test the fallback decision without a network."""

    def __init__(self, wheels_available: bool, stderr: str = "",
                 installed: bool = False) -> None:
        self.wheels_available, self.stderr, self.commands = wheels_available, stderr, []
        self.installed = installed

    def __call__(self, command, **_kwargs):
        self.commands.append(command)
        binary = "--only-binary" in command
        failed = binary and not self.wheels_available
        stdout = "" if failed else ("Requirement already satisfied: torch-scatter" if
                                    self.installed else "Successfully installed torch-scatter")
        return subprocess.CompletedProcess(command, 1 if failed else 0, stdout,
                                           self.stderr if failed else "")


INDEX = "https://data.pyg.org/whl/torch-2.4.0+cpu.html"


def test_wheels_are_taken_when_pip_gets_them():
    pip = _Pip(wheels_available=True)
    line = _module().install("python", "auto", lambda: INDEX, run=pip)
    assert line == f"PyG: installed the prebuilt torch-scatter and torch-sparse wheels of {INDEX}"
    assert len(pip.commands) == 1
    assert pip.commands[0][-2:] == ["-f", INDEX] and "--only-binary" in pip.commands[0]


def test_packages_already_installed_are_said_to_be_so():
    pip = _Pip(wheels_available=True, installed=True)
    line = _module().install("python", "auto", lambda: INDEX, run=pip)
    assert line == "PyG: torch-scatter and torch-sparse were already installed (nothing to do)"


def test_without_wheels_it_compiles_and_says_why(capsys):
    pip = _Pip(wheels_available=False, stderr=(
        "WARNING: Retrying ... Failed to establish a new connection\n"
        "ERROR: Could not find a version that satisfies the requirement torch-scatter\n"
        "ERROR: No matching distribution found for torch-scatter\n"))
    line = _module().install("python", "auto", lambda: INDEX, run=pip)
    assert [("--only-binary" in c, "--no-build-isolation" in c) for c in pip.commands] == [
        (True, False), (False, True)]
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed == [f"PyG: no prebuilt wheels from {INDEX} (No matching distribution found "
                       "for torch-scatter); compiling torch-scatter and torch-sparse from source "
                       "instead (10 to 30 minutes on 2 cores)"]
    assert line.startswith("PyG: compiled torch-scatter and torch-sparse from source (no "
                           f"prebuilt wheels from {INDEX}: No matching distribution")


def test_a_given_index_and_source_only():
    pip = _Pip(wheels_available=True)
    url = "https://example.org/whl/torch-2.4.0+cu121.html"
    _module().install("python", url, lambda: pytest.fail("not asked"), run=pip)
    assert pip.commands[0][-1] == url
    pip = _Pip(wheels_available=True)
    line = _module().install("python", "source", lambda: pytest.fail("not asked"), run=pip)
    assert len(pip.commands) == 1 and "--only-binary" not in pip.commands[0]
    assert line.endswith("(PYG_WHEELS=source)")


def test_makefile_installs_through_the_script_by_default():
    dry = subprocess.run(["make", "-n", "-B", "install"], capture_output=True, text=True,
                         cwd=SCRIPT.parents[1], check=True).stdout
    assert 'scripts/pyg_wheel_index.py --install "auto"' in dry
