"""Dataset pre-flight checks end to end: a plain ``fairchem --mode train`` on a bad dataset
stops with the check's line (see ``tests/test_preflight.py``)."""

from __future__ import annotations

import subprocess

import pytest

from tests.test_preflight import DEMO_CONFIG, REPO, bad, real  # noqa: F401 (fixtures)


@pytest.mark.e2e
def test_plain_fairchem_train_names_the_bad_file(bad, tmp_path):
    """`fairchem --mode train` with a demo config (format: est_fairchem.data.CheckedLmdbDataset)
    on a text file named data.lmdb: the check's line, not lmdb's bare error."""
    from est_fairchem.tools.fairchem_runs import fairchem_executable

    path, message = bad["text file"]
    result = subprocess.run(
        [fairchem_executable(), "--mode", "train", "--config-yml", str(DEMO_CONFIG), "--cpu",
         "--run-dir", str(tmp_path), f"--dataset.train.src={path}"],
        capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0
    assert f"est_fairchem.errors.InputError: {message}" in result.stdout + result.stderr
