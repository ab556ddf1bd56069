"""Pre-flight checks of datasets, with real files: each bad dataset fails with one line naming
the file and the problem, in `check_lmdb_dataset`, in the configs' `CheckedLmdbDataset` (so in
a plain `fairchem --mode train`), and in `est-fairchem demo` (exit status 2); a batch whose
graph has no edge fails in `check_graph_has_edges`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from est_fairchem.data.lmdb_writer import write_lmdb
from est_fairchem.data.preflight import check_lmdb_dataset
from est_fairchem.errors import InputError
from est_fairchem.models.common.input_checks import check_graph_has_edges
from tests.model_utils import REPO, est_fairchem_cli

DEMO_CONFIG = REPO / "configs/oc20/s2ef/demo/est_eqv2_demo.yml"


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    """A real demo set (`make-demo-data --task s2ef --systems 6 --frames 4`)."""
    from est_fairchem.data.demo_s2ef import DemoSizes, make_s2ef_demo

    out = tmp_path_factory.mktemp("real") / "s2ef"
    make_s2ef_demo(out, sizes=DemoSizes(6, 4), progress=False)
    return out


def _bad_datasets(real: Path, root: Path) -> dict[str, tuple[Path, str]]:
    """name -> (dataset folder, expected message) for every bad case, made from real files."""
    cases = {}
    missing = root / "missing"
    cases["missing path"] = (missing, f"{missing}: no such file or folder")
    (root / "empty").mkdir()
    cases["empty folder"] = (root / "empty", f"{root / 'empty'}: no *.lmdb file in this folder")
    (root / "text").mkdir()
    (root / "text" / "data.lmdb").write_text("train: frames of slabs\n")
    cases["text file"] = (root / "text",
                          f"{root / 'text' / 'data.lmdb'}: not an LMDB file (lmdb: ")
    (root / "truncated").mkdir()
    original = (real / "train" / "data.lmdb").read_bytes()
    (root / "truncated" / "data.lmdb").write_bytes(original[: len(original) // 2])
    cases["truncated"] = (root / "truncated",
                          f"{root / 'truncated' / 'data.lmdb'}: truncated LMDB file (")
    (root / "zero").mkdir()
    write_lmdb(root / "zero" / "data.lmdb", [])
    cases["zero records"] = (root / "zero",
                             f"{root / 'zero' / 'data.lmdb'}: the LMDB holds 0 records")
    return cases


CASES = ["missing path", "empty folder", "text file", "truncated", "zero records"]


@pytest.fixture(scope="module")
def bad(real, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    return _bad_datasets(real, tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", CASES)
def test_check_names_the_file_and_the_problem(bad, case):
    path, message = bad[case]
    with pytest.raises(InputError) as raised:
        check_lmdb_dataset(path)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_real_dataset_passes_with_its_record_count(real):
    assert check_lmdb_dataset(real / "train") == 24
    assert check_lmdb_dataset(real / "train" / "data.lmdb") == 24


def test_truncation_is_caught_however_short(real, tmp_path):
    original = (real / "train" / "data.lmdb").read_bytes()
    for size in (0, 100, 4096, len(original) - 1):
        path = tmp_path / f"cut{size}.lmdb"
        path.write_bytes(original[:size])
        with pytest.raises(InputError, match=f"^{path}: (truncated|not an LMDB|an empty file)"):
            check_lmdb_dataset(path)


def test_several_empty_lmdbs_are_named_by_their_folder(tmp_path):
    for name in ("a.lmdb", "b.lmdb"):
        write_lmdb(tmp_path / name, [])
    with pytest.raises(InputError, match=f"^{tmp_path}: its 2 LMDB files hold 0 records$"):
        check_lmdb_dataset(tmp_path)


def test_checked_dataset_reads_as_fairchem_and_refuses_bad_data(real, bad):
    """Resolved by fairchem's registry from the configs' dotted path; same records as
    LmdbDataset; a bad path raises the check's line, with no error from ``__del__``."""
    import gc

    from fairchem.core.common.registry import registry
    from fairchem.core.datasets import LmdbDataset

    from est_fairchem.data import CheckedLmdbDataset

    assert registry.get_dataset_class("est_fairchem.data.CheckedLmdbDataset") is CheckedLmdbDataset
    samples = {}
    for name, dataset_class in (("checked", CheckedLmdbDataset), ("plain", LmdbDataset)):
        dataset = dataset_class({"src": str(real / "val")})  # lmdb: one open env per file
        samples[name] = [dataset[i] for i in range(len(dataset))]
        del dataset
    assert len(samples["checked"]) == len(samples["plain"]) == 8
    for checked, plain in zip(samples["checked"], samples["plain"]):
        assert (checked.pos == plain.pos).all()
        assert (checked.sid, checked.fid) == (plain.sid, plain.fid)
    unraisable = []
    previous, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        for case in CASES:
            path, message = bad[case]
            with pytest.raises(InputError) as raised:
                CheckedLmdbDataset({"src": str(path)})
            assert str(raised.value).startswith(message)
            gc.collect()
    finally:
        sys.unraisablehook = previous
    assert not unraisable


def test_every_lmdb_config_checks_its_data():
    checked = {"configs/ase_db": "CheckedAseDBDataset", "configs/oc22": "CheckedOC22LmdbDataset"}
    for path in REPO.glob("configs/**/dataset.yml"):
        relative = str(path.relative_to(REPO))
        expected = next((fmt for folder, fmt in checked.items() if relative.startswith(folder)),
                        "CheckedLmdbDataset")  # OC22's records: fairchem's oc22_lmdb, checked
        assert expected in path.read_text(), path
        assert "format: lmdb" not in path.read_text(), path


def _batch(positions: list[list[list[float]]]):
    """A fairchem batch of molecules (``sid`` 10, 11, ...) with these positions in Å."""
    import torch
    from torch_geometric.data import Batch, Data

    return Batch.from_data_list([
        Data(pos=torch.tensor(p), atomic_numbers=torch.ones(len(p)), natoms=torch.tensor([len(p)]),
             sid=10 + i) for i, p in enumerate(positions)])


def test_batch_of_isolated_atoms_is_refused_naming_its_structures():
    from est_fairchem.models.common.graph import molecular_radius_graph

    far = _batch([[[0.0, 0, 0], [9.0, 0, 0]], [[0.0, 0, 0], [0, 0, 7.5]]])
    edges = molecular_radius_graph(far.pos, far.batch, cutoff=5.0, max_neighbors=20)
    assert edges.shape == (2, 0)
    expected = (r"^a batch of 2 structure\(s\) \(sid 10, 11\) has no edge: no atom has a "
                r"neighbour within the cutoff of 5 Å")
    with pytest.raises(InputError, match=expected):
        check_graph_has_edges(edges, far, 5.0)
    near = _batch([[[0.0, 0, 0], [9.0, 0, 0]], [[0.0, 0, 0], [0, 0, 1.1]]])
    check_graph_has_edges(molecular_radius_graph(near.pos, near.batch, 5.0, 20), near, 5.0)


def _s2ef_demo_folder(real: Path, root: Path, bad_train: Path) -> Path:
    """A demo data folder (its metadata.json, seed 0) whose train split is ``bad_train``."""
    data = root / "demo_data"
    shutil.copytree(real, data)
    shutil.rmtree(data / "train")
    if bad_train.exists():
        shutil.copytree(bad_train, data / "train")
    assert json.loads((data / "metadata.json").read_text())["seed"] == 0
    return data


@pytest.mark.parametrize("case", ["empty folder", "truncated", "zero records"])
def test_demo_command_refuses_bad_data_before_fairchem(real, bad, case, tmp_path):
    data = _s2ef_demo_folder(real, tmp_path, bad[case][0])
    result = subprocess.run(
        [*est_fairchem_cli(), "demo", "--config", str(DEMO_CONFIG),
         "--data", str(data), "--run-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2, result.stderr[-2000:]
    expected = bad[case][1].replace(str(bad[case][0]), str(data / "train"))
    assert result.stderr.startswith(f"est-fairchem demo: {expected}")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "runs" / "logs").exists()  # fairchem never started
