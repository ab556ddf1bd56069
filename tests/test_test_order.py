"""The order tests run in (tests/conftest.py): end-to-end, then slow, then the rest; within a
group the files that took longest last time first; each file's tests kept together in their
own order; the seconds of a run kept in pytest's cache for the next."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests import conftest


class _Cache(dict):
    def get(self, key, default):  # pytest's Cache.get(key, default)
        return super().get(key, default)

    def set(self, key, value):
        self[key] = value


def _item(nodeid: str, mark: str | None = None):
    return SimpleNamespace(nodeid=nodeid,
                           get_closest_marker=lambda name: mark if name == mark else None)


def _order(items, seconds) -> list[str]:
    config = SimpleNamespace(cache=_Cache({conftest._FILE_SECONDS: seconds}))
    conftest.pytest_collection_modifyitems(config, items)
    return [item.nodeid for item in items]


def test_groups_first_then_the_longest_files_each_file_whole_and_in_order():
    items = [_item("tests/a.py::t1"), _item("tests/b.py::t1"), _item("tests/a.py::t2"),
             _item("tests/e.py::t1", "e2e"), _item("tests/s.py::t1", "slow"),
             _item("tests/b.py::t2"), _item("tests/c.py::t1")]
    assert _order(items, {"tests/b.py": 30.0, "tests/a.py": 2.0}) == [
        "tests/e.py::t1", "tests/s.py::t1", "tests/b.py::t1", "tests/b.py::t2",
        "tests/a.py::t1", "tests/a.py::t2", "tests/c.py::t1"]


def test_without_a_cache_the_files_keep_their_order():
    items = [_item("tests/b.py::t1"), _item("tests/a.py::t1"), _item("tests/e.py::t1", "e2e")]
    assert _order(items, {}) == ["tests/e.py::t1", "tests/b.py::t1", "tests/a.py::t1"]


def test_a_run_adds_up_each_files_seconds_and_keeps_the_others(monkeypatch):
    monkeypatch.setattr(conftest, "_seconds_this_run", {})
    for nodeid, seconds in (("tests/a.py::t1", 1.5), ("tests/a.py::t1", 0.5),
                            ("tests/b.py::t[x]", 4.0)):
        conftest.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeid, duration=seconds))
    cache = _Cache({conftest._FILE_SECONDS: {"tests/a.py": 9.0, "tests/old.py": 7.0}})
    conftest.pytest_sessionfinish(SimpleNamespace(config=SimpleNamespace(cache=cache)))
    assert cache[conftest._FILE_SECONDS] == pytest.approx(
        {"tests/a.py": 2.0, "tests/b.py": 4.0, "tests/old.py": 7.0})
    worker = SimpleNamespace(cache=_Cache(), workerinput={})  # an xdist worker writes nothing
    conftest.pytest_sessionfinish(SimpleNamespace(config=worker))
    assert worker.cache == {}
