"""A missing input file or an occupied output folder is refused in one line before the
command imports torch and fairchem (seconds), naming the path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.model_utils import REPO

CONFIG = "configs/oc20/s2ef/demo/est_eqv2_demo.yml"

# (arguments with MISSING for a path that does not exist, the expected line)
CASES = [
    pytest.param(["count-params", CONFIG, "MISSING"],
                 "count-params: config file not found: MISSING", id="count-params"),
    pytest.param(["check-equivariance", "MISSING"],
                 "check-equivariance: config file not found: MISSING", id="equivariance-config"),
    pytest.param(["check-equivariance", CONFIG, "--checkpoint", "MISSING"],
                 "check-equivariance: checkpoint not found: MISSING", id="equivariance-checkpoint"),
    pytest.param(["check-equivariance", CONFIG, "--structure", "MISSING"],
                 "check-equivariance: structure file not found: MISSING",
                 id="equivariance-structure"),
    pytest.param(["graph-stats", "MISSING"], "graph-stats: config file not found: MISSING",
                 id="graph-stats"),
    pytest.param(["warm-start", "--from", "MISSING", "--config", CONFIG, "--out", "OUT"],
                 "warm-start: checkpoint not found: MISSING", id="warm-start"),
    pytest.param(["demo", "--config", "MISSING"], "demo: config file not found: MISSING",
                 id="demo"),
    pytest.param(["make-demo-data", "--task", "s2ef", "--out", "OCCUPIED"],
                 "make-demo-data: OCCUPIED already exists and is not empty; pass --overwrite",
                 id="make-demo-data"),
]

_PROBE = """
import sys
from est_fairchem.cli import main
code = main(sys.argv[1:])
heavy = sorted(name for name in ("torch", "fairchem") if name in sys.modules)
print("imported:", ",".join(heavy) or "none")
sys.exit(code)
"""


@pytest.mark.parametrize(("args", "line"), CASES)
def test_refused_in_one_line_before_torch_is_imported(args, line, tmp_path):
    missing, occupied = tmp_path / "missing.pt", tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("a user's file\n")
    paths = {"MISSING": str(missing), "OCCUPIED": str(occupied), "OUT": str(tmp_path / "o.pt")}
    argv = [paths.get(arg, arg) for arg in args]
    result = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True,
                            text=True, cwd=REPO)
    expected = "est-fairchem " + line.replace("MISSING", str(missing)).replace(
        "OCCUPIED", str(occupied))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert result.stdout.strip() == "imported: none"
    assert (occupied / "mine.txt").read_text() == "a user's file\n"
