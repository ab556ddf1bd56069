"""A fairchem run's log (``run_fairchem``: the comparison runner's and the demos' train.log) is
written line by line while the run goes on, so that it can be followed (``tail -f``) and a
caller can act on a logged step; before, the lines sat in an 8 KiB buffer until it filled."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from est_fairchem.tools import fairchem_runs


def test_each_line_is_in_the_log_while_the_run_goes_on(tmp_path, monkeypatch):
    go_on = tmp_path / "go_on"
    stand_in = tmp_path / "fairchem"  # prints a step, then waits for the test to see it
    stand_in.write_text(
        f"#!{sys.executable}\nimport pathlib, sys, time\n"
        "print('step: 1.00e+00', flush=True)\n"
        f"deadline = time.time() + 60\n"
        f"while not pathlib.Path({str(go_on)!r}).exists() and time.time() < deadline:\n"
        "    time.sleep(0.05)\n"
        "sys.exit(0 if pathlib.Path(" + repr(str(go_on)) + ").exists() else 3)\n")
    stand_in.chmod(0o755)
    monkeypatch.setattr(fairchem_runs, "fairchem_executable", lambda: str(stand_in))
    log = tmp_path / "run" / "train.log"
    run = threading.Thread(target=fairchem_runs.run_fairchem, args=(["--mode", "train"], log))
    run.start()
    deadline = time.time() + 60
    while time.time() < deadline and "step: 1.00e+00" not in _text(log):
        time.sleep(0.05)
    seen = "step: 1.00e+00" in _text(log)
    go_on.touch()
    run.join(60)
    assert seen, f"the logged step was not in {log} while the run went on: {_text(log)!r}"


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""
