"""benchmarks/host_overhead.py as a user runs it (a subprocess), on the demo-size models."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.model_utils import REPO

pytestmark = pytest.mark.slow  # a paper-size build or a benchmark script: not in make test-fast


def test_host_overhead_reports_the_ratio_of_median_times(tmp_path):
    out = tmp_path / "host.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks/host_overhead.py"), "--size", "small",
                    "--steps", "3", "--out", str(out)],
                   check=True, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = json.loads(out.read_text())
    assert report["command"].startswith("python benchmarks/host_overhead.py --size small")
    assert report["atoms"] == 2  # one CO molecule
    models = report["models"]
    assert models["est"]["config"] != models["plain"]["config"]
    assert math.isclose(report["ratio_step_time"],
                        models["est"]["median_ms"] / models["plain"]["median_ms"])
    assert 0 < report["pair_ratio_q25"] <= report["pair_ratio_q75"] < math.inf


def test_host_overhead_refuses_too_few_steps(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "benchmarks/host_overhead.py"),
                          "--steps", "1"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 2 and "--steps 1: expected at least 2" in run.stderr
