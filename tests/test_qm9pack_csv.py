"""QM9 from the qm9pack package's CSV files: the same LMDB records as the release's xyz files
for the same molecules, the whole release counted, and bad rows named by file, line and
column."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from est_fairchem.data.demo_qm9 import format_qm9_xyz
from est_fairchem.data.qm9_convert import prepare_qm9, release_path, split_sizes
from est_fairchem.data.qm9_xyz import QM9FormatError
from est_fairchem.data.qm9pack_csv import (
    count_csv_records,
    iter_csv_records,
    qm9pack_data_folder,
)
from tests.model_utils import lmdb_samples

ROWS = 25  # the first molecules of the release (indices 1-25: H, C, N, O, F)


@pytest.fixture(scope="module")
def csv_and_xyz(tmp_path_factory) -> tuple[Path, Path]:
    """The first ROWS rows of the installed qm9pack, as a CSV folder and in the release's xyz
    layout."""
    part1 = qm9pack_data_folder() / "qm9_part1.csv"
    root = tmp_path_factory.mktemp("qm9pack")
    csv_folder, xyz_folder = root / "csv", root / "xyz"
    csv_folder.mkdir()
    xyz_folder.mkdir()
    with open(part1, newline="") as handle:
        lines = [next(handle) for _ in range(ROWS + 1)]
    (csv_folder / "qm9_part1.csv").write_text("".join(lines))
    for record in iter_csv_records(csv_folder):
        symbols = [{1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}[int(z)] for z in record.numbers]
        text = format_qm9_xyz(record.index, symbols, record.positions, record.charges,
                              record.properties, record.frequencies, record.smiles * 2,
                              record.inchi * 2)
        (xyz_folder / f"dsgdb9nsd_{record.index:06d}.xyz").write_text(text)
    return csv_folder, xyz_folder


def test_csv_and_release_layout_give_identical_records(csv_and_xyz, tmp_path):
    csv_folder, xyz_folder = csv_and_xyz
    from_csv = prepare_qm9(csv_folder, tmp_path / "a", subtract_atomrefs=True, progress=False)
    from_xyz = prepare_qm9(xyz_folder, tmp_path / "b", subtract_atomrefs=True, progress=False)
    assert from_csv["samples"] == from_xyz["samples"] == dict(
        zip(("train", "val", "test"), split_sizes(ROWS)))
    for split in ("train", "val", "test"):
        a = lmdb_samples(tmp_path / "a" / split / "data.lmdb")
        b = lmdb_samples(tmp_path / "b" / split / "data.lmdb")
        assert len(a) == len(b) > 0
        for one, other in zip(a, b):
            assert sorted(one.keys()) == sorted(other.keys())
            for key in one.keys():
                x, y = one[key], other[key]
                if isinstance(x, torch.Tensor):
                    assert x.dtype == y.dtype and torch.equal(x, y), (split, key)
                else:
                    assert x == y, (split, key)
    split_a = np.load(tmp_path / "a" / "split_indices.npz")
    split_b = np.load(tmp_path / "b" / "split_indices.npz")
    assert all(np.array_equal(split_a[s], split_b[s]) for s in ("train", "val", "test"))


def test_qm9pack_holds_the_whole_characterized_release():
    """130,831 = 133,885 molecules of the release less the 3,054 uncharacterized ones, so the
    standard split follows as 110,000 / 10,000 / 10,831 with or without --exclude."""
    folder = release_path("qm9pack")
    assert folder == qm9pack_data_folder()
    assert count_csv_records(folder) == 130_831
    assert split_sizes(130_831) == (110_000, 10_000, 10_831)


def test_a_bad_row_names_file_line_and_column(csv_and_xyz, tmp_path):
    source = csv_and_xyz[0] / "qm9_part1.csv"
    with open(source, newline="") as handle:
        rows = list(csv.reader(handle))
    rows[3][rows[0].index("HOMO_au")] = "n/a"
    bad = tmp_path / "bad"
    bad.mkdir()
    with open(bad / "qm9_part1.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(QM9FormatError, match=r"qm9_part1.csv, line 4: HOMO_au: expected a "
                                             r"number, found 'n/a'"):
        prepare_qm9(bad, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_truncated_file_is_one_line_naming_file_and_line(csv_and_xyz, tmp_path):
    """A download cut inside its last row: csv gives None for the missing columns."""
    from tests.model_utils import est_fairchem_cli
    import subprocess

    text = (csv_and_xyz[0] / "qm9_part1.csv").read_text()
    cut = tmp_path / "cut"
    cut.mkdir()
    last_row_start = text.rstrip("\n").rfind("\n") + 1
    (cut / "qm9_part1.csv").write_text(text[:last_row_start + 40])
    result = subprocess.run([*est_fairchem_cli(), "prepare-qm9", "--raw", str(cut), "--out",
                             str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"est-fairchem prepare-qm9: {cut / 'qm9_part1.csv'}, line "
                           f"{ROWS + 1}: the row ends before column "), last
    assert "a truncated file?" in last
    assert not (tmp_path / "out").exists()
