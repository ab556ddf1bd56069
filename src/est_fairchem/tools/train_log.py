"""Read the metrics fairchem's trainer logs (its evaluator's own numbers)."""

from __future__ import annotations

import re
from pathlib import Path

_METRIC = re.compile(r"([a-z0-9_]+): ([-+0-9.eE]+)")


def validation_metrics(log_file: Path) -> list[dict[str, float]]:
    """Every "Evaluating on val." result in a fairchem training log, in order."""
    results, expect_val = [], False
    for line in Path(log_file).read_text().splitlines():
        if "Evaluating on val." in line:
            expect_val = True
        elif expect_val and "_mae:" in line:
            results.append({k: float(v) for k, v in _METRIC.findall(line.split("(INFO):")[-1])})
            expect_val = False
    return results


def best_validation(log_file: Path, primary_metric: str = "forces_mae") -> dict[str, float]:
    """The validation result with the lowest primary metric (the one of best_checkpoint.pt)."""
    results = validation_metrics(log_file)
    if not results:
        raise ValueError(f"{log_file} holds no validation results")
    return min(results, key=lambda r: r[primary_metric])
