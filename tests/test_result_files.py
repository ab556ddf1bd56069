"""Benchmark outputs: an existing --out / --plot file is refused before any work (unless
--overwrite), a folder is never taken for a file, and JSON is written whole or not at all."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from est_fairchem.testing.result_files import add_overwrite_option, refuse_existing, write_json
from tests.model_utils import REPO

pytestmark = pytest.mark.slow  # a paper-size build or a benchmark script: not in make test-fast

SCRIPTS = ["throughput", "profile_update", "host_overhead", "equivariance", "equivariance_cost",
           "expressiveness"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--out", type=Path)
    add_overwrite_option(parser)
    return parser


def test_existing_file_is_refused_and_kept(tmp_path, capsys):
    earlier = tmp_path / "r.json"
    earlier.write_text('{"earlier": true}\n')
    parser = _parser()
    args = parser.parse_args(["--out", str(earlier)])
    with pytest.raises(SystemExit):
        refuse_existing(parser, [args.out], args.overwrite)
    assert f"{earlier} already exists: pass --overwrite" in capsys.readouterr().err
    assert json.loads(earlier.read_text()) == {"earlier": True}


def test_overwrite_replaces_whole_file_and_leaves_no_partial(tmp_path):
    target = tmp_path / "deep" / "r.json"
    write_json(target, {"a": 1})
    parser = _parser()
    args = parser.parse_args(["--out", str(target), "--overwrite"])
    refuse_existing(parser, [args.out, None], args.overwrite)  # no exit
    write_json(target, {"b": [1, 2]})
    assert json.loads(target.read_text()) == {"b": [1, 2]}
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.json"]


def test_folder_is_refused_even_with_overwrite(tmp_path, capsys):
    parser = _parser()
    with pytest.raises(SystemExit):
        refuse_existing(parser, [tmp_path], overwrite=True)
    assert f"{tmp_path} is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_refuses_an_existing_out_before_working(script, tmp_path):
    earlier = tmp_path / "earlier.json"
    earlier.write_text("kept\n")
    result = subprocess.run([sys.executable, f"benchmarks/{script}.py", "--out", str(earlier)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2, result.stderr[-1000:]
    assert f"{earlier} already exists" in result.stderr
    assert earlier.read_text() == "kept\n"
