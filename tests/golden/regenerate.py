"""Rewrite the golden numbers (``tests/golden/values.json``) from today's code.

    python -m tests.golden.regenerate                  # the numbers, from the stored checkpoints
    python -m tests.golden.regenerate --checkpoints    # new checkpoints first (fresh weights)

Regenerate the numbers only when a change is *meant* to change what the models compute (a model
fix, new defaults), and say so in the commit; a refactor must pass ``tests/test_golden_e2e.py``
unchanged. ``--checkpoints`` replaces the stored checkpoints, which are also the test that a
checkpoint written by an earlier release still loads: use it only when a backbone's parameters
change on purpose (run it from the repository root; about a minute per case on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from tests.golden.cases import CASES, REPO, VALUES, run_case, store_checkpoint

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def _commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=REPO)
    return result.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", action="store_true",
                        help="first replace the stored checkpoints by fresh one-epoch runs")
    args = parser.parse_args(argv)

    import fairchem.core
    import torch

    from est_fairchem.testing.result_files import write_text

    cases = {}
    for case in CASES:
        if args.checkpoints:
            with tempfile.TemporaryDirectory() as root:
                fresh = run_case(case, Path(root), checkpoint=None)
                store_checkpoint(fresh["best_checkpoint"], case)
        with tempfile.TemporaryDirectory() as root:
            result = run_case(case, Path(root), checkpoint=case.checkpoint)
        cases[case.name] = {"losses": result["losses"], "predictions": result["predictions"]}
        print(f"{case.name}: losses {', '.join(f'{x:.6g}' for x in result['losses'])}")
    values = {
        "about": "tests/test_golden_e2e.py compares each case's training losses and test "
                 "predictions with these; regenerate with `python -m tests.golden.regenerate`",
        "tolerance": TOLERANCE,
        "generated": {"date": time.strftime("%Y-%m-%d"), "commit": _commit(),
                      "torch": torch.__version__, "fairchem": fairchem.core.__version__,
                      "machine": platform.machine(), "python": platform.python_version()},
        "cases": cases,
    }
    write_text(VALUES, json.dumps(values, indent=1) + "\n")
    print(f"wrote {VALUES.relative_to(REPO)}")


if __name__ == "__main__":
    main()
