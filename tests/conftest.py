from __future__ import annotations

import logging

import pytest
import torch


_FILE_SECONDS = "est_fairchem/file_seconds"  # pytest's cache (.pytest_cache): seconds per file
_seconds_this_run: dict[str, float] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """End-to-end tests first, then the slow ones, then the rest; within each group the files
    that took longest in earlier runs first (pytest's cache; a fresh clone keeps the files'
    order), each file in its own order (a stable sort). `make test` gives each pytest-xdist
    worker whole files in this order, so the long runs start early and the short files fill in
    at the end: the workers finish together."""
    cache = getattr(config, "cache", None)
    seconds = cache.get(_FILE_SECONDS, {}) if cache is not None else {}

    def rank(item: pytest.Item) -> tuple[int, float]:
        group = next((i for i, mark in enumerate(("e2e", "slow"))
                      if item.get_closest_marker(mark)), 2)
        return group, -seconds.get(item.nodeid.split("::")[0], 0.0)

    items.sort(key=rank)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add up each file's seconds (setup, call and teardown; under pytest-xdist the controller
    gets every worker's reports)."""
    path = report.nodeid.split("::")[0]
    _seconds_this_run[path] = _seconds_this_run.get(path, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Keep the seconds of the files this run ran (the controller only, not a worker) for the
    next run's order."""
    cache = getattr(session.config, "cache", None)
    if cache is None or hasattr(session.config, "workerinput") or not _seconds_this_run:
        return
    cache.set(_FILE_SECONDS, {**cache.get(_FILE_SECONDS, {}), **_seconds_this_run})


@pytest.fixture(autouse=True)
def _root_logger_level_restored():
    """Each test starts with the root logger's level as the session left it: fairchem's
    ``setup_logging`` (called by its trainers and scripts run in-process) sets it to INFO, and a
    later test in the same worker would otherwise capture INFO lines it never asked for."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


@pytest.fixture
def float64():
    """Build and run in float64 (transform buffers are made in the default dtype's precision)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# -- made data and demo runs that several test files share (module scope: each file its own) --


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    """A made QM9 release folder (40 molecules, seed 3: xyz files, exclusion list)."""
    from est_fairchem.data.demo_qm9 import make_qm9_demo

    out = tmp_path_factory.mktemp("qm9") / "raw"
    make_qm9_demo(out, molecules=40, seed=3, progress=False)
    return out


@pytest.fixture(scope="module")
def bulk_db(tmp_path_factory):
    """Made EMT bulk ASE databases with energy, forces and stress: train 16, val 4, test 4."""
    from est_fairchem.data.demo_bulk import BulkSizes, make_bulk_demo

    out = tmp_path_factory.mktemp("bulk") / "bulk"
    make_bulk_demo(out, seed=0, sizes=BulkSizes(train=16, val=4, test=4))
    return out


@pytest.fixture(scope="module")
def demo(request, tmp_path_factory):
    """`est-fairchem demo DEMO_ARGS` (the test module's list) on its own made data in a
    temporary folder: (the run's summary JSON, its stdout)."""
    import json
    import subprocess

    from tests.model_utils import REPO, est_fairchem_cli

    args = request.module.DEMO_ARGS
    task = args[args.index("--task") + 1] if "--task" in args else "s2ef"
    root = tmp_path_factory.mktemp(f"{task}_demo")
    result = subprocess.run(
        [*est_fairchem_cli(), "demo", *map(str, args),
         "--data", str(root / "data"), "--run-dir", str(root / "runs")],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((root / "runs" / f"demo_summary_{task}.json").read_text())
    return summary, result.stdout
