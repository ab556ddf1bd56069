"""Bad input to `est-fairchem` gets one line naming the file, key or value and exit status 2;
the Python traceback only with --debug (or EST_FAIRCHEM_DEBUG=1)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.model_utils import REPO, est_fairchem_cli

DEMO_CONFIG = REPO / "configs" / "oc20" / "s2ef" / "demo" / "est_eqv2_demo.yml"


def _run(*args: str, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run([*est_fairchem_cli(), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env)


def _one_line(result, command: str) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"est-fairchem {command}: "), lines
    return lines[0]


def _config_with(tmp_path: Path, est_block: str) -> Path:
    config = tmp_path / "est_block.yml"
    config.write_text(f"includes:\n  - {DEMO_CONFIG}\nmodel:\n  backbone:\n    est: {est_block}\n")
    return config


def test_est_block_that_is_not_a_mapping(tmp_path):
    line = _one_line(_run("count-params", _config_with(tmp_path, "abc")), "count-params")
    assert "est: 'abc': expected a mapping of options" in line


def test_debug_flag_and_environment_variable_show_the_traceback(tmp_path, monkeypatch):
    from est_fairchem.cli import _debug_requested, build_parser

    config = tmp_path / "missing.yml"  # refused before torch is imported: a fast traceback
    for result in (_run("count-params", config, "--debug"),
                   _run("count-params", config, env={**os.environ, "EST_FAIRCHEM_DEBUG": "1"})):
        assert result.returncode != 0 and "Traceback" in result.stderr
        assert f"FileNotFoundError: config file not found: {config}" in result.stderr
    monkeypatch.delenv("EST_FAIRCHEM_DEBUG", raising=False)
    parse = build_parser().parse_args
    assert _debug_requested(parse(["--debug", "count-params", str(config)]))  # either place
    assert not _debug_requested(parse(["count-params", str(config)]))


def _release_archive(path: Path, records: int = 30) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as archive:
        for index in range(1, records + 1):
            data = os.urandom(4000)  # incompressible, so the archive is long
            info = tarfile.TarInfo(f"dsgdb9nsd_{index:06d}.xyz")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
def test_damaged_archive_is_called_damaged(tmp_path, damage):
    whole = _release_archive(tmp_path)
    archive = tmp_path / "dsgdb9nsd.xyz.tar.bz2"
    archive.write_bytes(whole[:20] + bytes(200) + whole[220:] if damage == "corrupted"
                        else whole[: len(whole) // 2])
    line = _one_line(_run("prepare-qm9", "--raw", archive, "--out", tmp_path / "out"),
                     "prepare-qm9")
    assert f"{archive}: a damaged bz2 archive" in line and "download it again" in line
    assert not (tmp_path / "out").exists()


def test_demo_outside_the_repository_says_where_to_run_it(tmp_path):
    line = _one_line(_run("demo", cwd=tmp_path), "demo")
    assert "run `est-fairchem demo` from the root of the est-fairchem repository" in line
    assert list(tmp_path.iterdir()) == []  # no data made


def test_warm_start_from_a_file_that_is_not_a_checkpoint(tmp_path):
    notes = tmp_path / "notes.pt"
    notes.write_text("not a checkpoint\n")
    line = _one_line(_run("warm-start", "--from", notes, "--config", DEMO_CONFIG,
                          "--out", tmp_path / "est.pt"), "warm-start")
    assert f"{notes}: not a fairchem checkpoint" in line


@pytest.mark.parametrize("where", ["folder", "below_a_file", "the_source"])
def test_warm_start_out_that_cannot_be_written(tmp_path, where):
    source = tmp_path / "eqv2.pt"
    source.write_bytes(b"kept")
    (tmp_path / "a_file").write_text("x")
    out = {"folder": tmp_path, "below_a_file": tmp_path / "a_file" / "est.pt",
           "the_source": source}[where]
    line = _one_line(_run("warm-start", "--from", source, "--config", DEMO_CONFIG,
                          "--out", out, "--overwrite"), "warm-start")
    assert f"--out {out}" in line
    assert source.read_bytes() == b"kept"


def test_qm9_demo_below_its_minimum_says_the_minimum(tmp_path):
    line = _one_line(_run("make-demo-data", "--task", "qm9", "--out", tmp_path / "raw",
                          "--systems", "5"), "make-demo-data")
    assert "--systems 5: the QM9 demo needs at least 6 molecules" in line
    assert not (tmp_path / "raw").exists()
