"""``scripts/test_workers.py``: `make test` starts no more pytest workers than the cores this
process may use (its CPU affinity), and at least one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts/test_workers.py"


def _workers(preexec_fn=None) -> int:
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                            check=True, preexec_fn=preexec_fn)
    return int(result.stdout)


def test_one_worker_per_core_of_the_affinity_at_most():
    assert 1 <= _workers() <= len(os.sched_getaffinity(0))


def test_a_process_held_to_one_core_gets_one_worker():
    core = min(os.sched_getaffinity(0))
    assert _workers(lambda: os.sched_setaffinity(0, {core})) == 1
