"""benchmarks/throughput.py with its noise control, as a user runs it (a subprocess), on the
demo-size models and one small batch per round on the CPU."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.model_utils import REPO

pytestmark = pytest.mark.slow  # a paper-size build or a benchmark script: not in make test-fast


def test_throughput_reports_ratio_and_noise_control(tmp_path):
    out = tmp_path / "throughput.json"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks/throughput.py"), "--size", "small",
         "--batch-size", "1", "--batches", "1", "--rounds", "3", "--slab", "2,2,3",
         "--control", "--kernel-profile", "--out", str(out)],
        check=True, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = json.loads(out.read_text())
    assert set(report["models"]) == {"est", "plain", "control"}
    assert "--control" in report["command"]
    models = report["models"]
    # the control is the plain model again: same config, same parameter count
    assert models["control"]["config"] == models["plain"]["config"]
    assert models["control"]["parameters"] == models["plain"]["parameters"]
    assert models["est"]["config"] != models["plain"]["config"]
    for key, expected in (("ratio_samples_per_s", models["est"]), ("ratio_control", models["control"])):
        assert math.isclose(report[key], expected["samples_per_s"] / models["plain"]["samples_per_s"])
    assert len(report["round_ratios"]) == 3
    assert all(0 < r < math.inf for r in report["round_ratios"])
    for name in ("est", "plain"):
        profile = models[name]["kernel_profile"]
        # forward + backward is part of the step; the optimizer dispatches operators too
        assert 0 < profile["kernel_ops_forward_backward"] < profile["kernel_ops"]
        assert profile["dispatched_ops_forward_backward"] > 0
