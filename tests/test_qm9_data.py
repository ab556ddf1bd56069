"""QM9: the release parser, unit conversions, the split rule, the LMDBs through fairchem's
LmdbDataset, the tar.bz2 path, atomic writes and the CLI (`make-demo-data --task qm9` ->
`prepare-qm9`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from est_fairchem.data.demo_qm9 import format_uncharacterized
from est_fairchem.data.qm9_convert import (
    HARTREE_TO_EV,
    TARGETS,
    prepare_qm9,
    record_to_data,
    split_positions,
    split_sizes,
)
from est_fairchem.data.qm9_xyz import (
    QM9FormatError,
    parse_qm9_xyz,
    read_exclusion_list,
)
from est_fairchem.errors import InputError
from tests.model_utils import est_fairchem_cli, lmdb_samples

# dsgdb9nsd_000001.xyz of the release (methane), with one coordinate in the *^ style
METHANE = (
    "5\n"
    "gdb 1\t157.7118\t157.70997\t157.70699\t0.\t13.21\t-0.3877\t0.1171\t0.5048\t35.3641\t"
    "0.044749\t-40.47893\t-40.476062\t-40.475117\t-40.498597\t6.469\t\n"
    "C\t-0.0126981359\t 1.0858041578\t 0.0080009958\t-0.535689\n"
    "H\t 0.002150416\t-0.0060313176\t 0.0019761204\t 0.133921\n"
    "H\t 1.0117308433\t 1.4637511618\t 2.765748*^-4\t 0.133922\n"
    "H\t-0.540815069\t 1.4475266138\t-0.8766437152\t 0.133923\n"
    "H\t-0.5238136345\t 1.4379326443\t 0.9063972942\t 1.5*^-6\n"
    "1341.307\t1341.3284\t1341.365\t1562.6731\t1562.7453\t3038.3205\t3151.6034\t3151.6788\t"
    "3151.7078\n"
    "C\tC\t\n"
    "InChI=1S/CH4/h1H4\tInChI=1S/CH4/h1H4\n"
)
DEMO_MOLECULES = 40  # the conftest `raw_dir` fixture


@pytest.fixture(scope="module")
def lmdb_dir(raw_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qm9") / "lmdb"
    prepare_qm9(raw_dir, out, exclude=raw_dir / "uncharacterized.txt", seed=1,
                subtract_atomrefs=True, progress=False)
    return out


def test_parser_reads_a_release_record_with_tabs_and_mathematica_exponents():
    record = parse_qm9_xyz(METHANE, "dsgdb9nsd_000001.xyz")
    assert record.index == 1
    assert record.numbers.tolist() == [6, 1, 1, 1, 1]
    assert record.positions.shape == (5, 3)
    assert record.positions[2, 2] == pytest.approx(2.765748e-4, rel=1e-12)
    assert record.charges[4] == pytest.approx(1.5e-6, rel=1e-12)
    assert record.properties["mu"] == 0.0 and record.properties["U0"] == -40.47893
    assert record.properties["A"] == 157.7118 and record.properties["Cv"] == 6.469
    assert len(record.frequencies) == 3 * 5 - 6
    assert record.smiles == ("C", "C") and record.inchi[0] == "InChI=1S/CH4/h1H4"


def _lines(text: str) -> list[str]:
    return text.split("\n")


@pytest.mark.parametrize("name,text,line,expected", [
    ("wrong atom count", METHANE.replace("5\n", "6\n", 1), 8, "atom 6 of 6"),
    ("too few atoms counted", METHANE.replace("5\n", "4\n", 1), 7, "harmonic frequencies"),
    ("bad number", METHANE.replace("-0.3877", "-0.38.77"), 2, "property homo"),
    ("bad coordinate", METHANE.replace("1.0858041578", "1.08x"), 3, "x, y, z and charge"),
    ("missing property line", "\n".join(_lines(METHANE)[:1] + _lines(METHANE)[2:]), 2,
     "property line"),
    ("truncated file", "\n".join(_lines(METHANE)[:5]), 6, "the file ends there"),
    ("no InChI line", "\n".join(_lines(METHANE)[:9]), 10, "InChI line"),
    ("not a count", "five\n" + METHANE.split("\n", 1)[1], 1, "number of atoms"),
    ("unknown element", METHANE.replace("C\t-0.0126", "Cl\t-0.0126"), 3, "atom 1 of 5"),
    ("text after the record", METHANE + "extra\n", 11, "end of the record"),
])
def test_parser_errors_name_file_line_and_what_was_expected(name, text, line, expected):
    with pytest.raises(QM9FormatError) as err:
        parse_qm9_xyz(text, "archive.tar.bz2:dsgdb9nsd_000001.xyz")
    message = str(err.value)
    assert message.startswith(f"archive.tar.bz2:dsgdb9nsd_000001.xyz, line {line}: expected")
    assert expected in message
    assert isinstance(err.value, ValueError)  # the CLI reports ValueErrors as one line


def test_two_records_with_one_index_are_refused(tmp_path):
    for name in ("dsgdb9nsd_000001.xyz", "dsgdb9nsd_000002.xyz"):
        (tmp_path / name).write_text(METHANE)
    with pytest.raises(QM9FormatError, match=r"dsgdb9nsd_000002.xyz: molecule index 1 also in"):
        prepare_qm9(tmp_path, tmp_path / "out", progress=False)


def test_unit_conversion_to_ev_and_atomization_energies():
    data = record_to_data(parse_qm9_xyz(METHANE, "m.xyz"), subtract_atomrefs=True)
    ha = HARTREE_TO_EV
    assert ha == 27.211386245988
    assert data.homo == pytest.approx(-0.3877 * ha, abs=1e-12)
    assert data.gap == pytest.approx(0.5048 * ha, abs=1e-12)
    assert data.zpve == pytest.approx(0.044749 * ha, abs=1e-12)
    assert data.u0 == pytest.approx(-40.47893 * ha, abs=1e-9)
    assert data.g == pytest.approx(-40.498597 * ha, abs=1e-9)
    assert (data.mu, data.alpha, data.r2, data.cv) == (0.0, 13.21, 35.3641, 6.469)
    # methane's U0 atomization energy: -40.47893 - (-37.846772 - 4 * 0.500273) Ha = -17.17 eV
    assert data.u0_atomization == pytest.approx(-0.631066 * ha, abs=1e-9)
    assert data.h_atomization == pytest.approx((-40.475117 + 37.844411 + 4 * 0.497912) * ha,
                                               abs=1e-9)
    assert data.y.shape == (1, 12)
    columns = dict(zip(TARGETS, data.y[0].tolist()))
    assert columns["u0"] == pytest.approx(data.u0_atomization, abs=1e-4)
    assert columns["homo"] == pytest.approx(data.homo, rel=1e-6)
    plain = record_to_data(parse_qm9_xyz(METHANE, "m.xyz"))
    assert plain.y[0, 7] == pytest.approx(-40.47893 * ha, rel=1e-6)
    assert "u0_atomization" not in plain
    assert plain.sid == 1 and plain.natoms == 5 and plain.cell.abs().sum() == 0


def test_split_sizes_full_release_and_scaled_demo():
    assert split_sizes(130_831) == (110_000, 10_000, 10_831)
    assert split_sizes(133_885) == (110_000, 10_000, 13_885)
    assert split_sizes(200) == (168, 15, 17)
    assert split_sizes(3) == (1, 1, 1)
    assert sum(split_sizes(120_000)) == 120_000 and split_sizes(120_000)[2] > 0
    with pytest.raises(InputError, match="at least 3 molecules"):
        split_sizes(2)


def test_split_is_a_seeded_partition():
    first, again, other = split_positions(500, 1), split_positions(500, 1), split_positions(500, 2)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["train"], other["train"])
    merged = np.concatenate([first["train"], first["val"], first["test"]])
    assert sorted(merged.tolist()) == list(range(500))
    # the TorchMD-Net / Equiformer rule: the first 110,000 of the seeded permutation train
    full = split_positions(130_831, 1)
    assert np.array_equal(full["train"], np.random.default_rng(1).permutation(130_831)[:110_000])


def test_exclusion_list_in_the_release_layout(tmp_path):
    path = tmp_path / "uncharacterized.txt"
    path.write_text(format_uncharacterized([(21725, "CC"), (58, "NC(=N)C#N")]))
    exclusions = read_exclusion_list(path)
    assert exclusions.indices == {58, 21725}
    assert exclusions.data_lines == 2 and exclusions.skipped_lines > 5
    path.write_text("header\n=====\n    17\n")
    with pytest.raises(QM9FormatError, match=r"uncharacterized.txt, line 3: expected"):
        read_exclusion_list(path)
    path.write_text("only\ntext\n")
    with pytest.raises(QM9FormatError, match="no line of the form"):
        read_exclusion_list(path)


def test_demo_files_follow_the_release_layout(raw_dir):
    files = sorted(raw_dir.glob("dsgdb9nsd_*.xyz"))
    assert len(files) == DEMO_MOLECULES and files[0].name == "dsgdb9nsd_000001.xyz"
    lines = files[0].read_text().rstrip("\n").split("\n")
    n = int(lines[0])
    assert len(lines) == n + 5
    assert lines[1].startswith("gdb 1\t") and lines[1].count("\t") == 16
    assert all(line.count("\t") == 4 for line in lines[2:2 + n])
    assert lines[-1].startswith("InChI=")
    assert any("*^-" in f.read_text() for f in files)
    record = parse_qm9_xyz(files[2].read_text(), str(files[2]))
    assert record.index == 3 and 0 < abs(record.positions[0, 2]) < 1e-4


def test_lmdbs_read_by_fairchem_with_split_exclusion_and_metadata(raw_dir, lmdb_dir):
    metadata = json.loads((lmdb_dir / "metadata.json").read_text())
    excluded = set(json.loads((raw_dir / "demo_metadata.json").read_text())["uncharacterized"])
    assert len(excluded) == 2
    assert metadata["seed"] == 1 and metadata["molecules"] == DEMO_MOLECULES - 2
    assert metadata["exclusion"]["excluded"] == 2
    sizes = split_sizes(DEMO_MOLECULES - 2)
    assert tuple(metadata["samples"][s] for s in ("train", "val", "test")) == sizes
    indices = np.load(lmdb_dir / "split_indices.npz")
    sids = {}
    for split in ("train", "val", "test"):
        samples = lmdb_samples(lmdb_dir / split)
        assert len(samples) == metadata["samples"][split]
        sids[split] = [int(s.sid) for s in samples]
        assert sids[split] == indices[split].tolist()
        for sample in samples:
            n = int(sample.natoms)
            assert sample.pos.shape == (n, 3) and sample.atomic_numbers.shape == (n,)
            assert sample.cell.shape == (1, 3, 3) and not bool(sample.pbc.any())
            assert sample.fixed.sum() == 0 and bool((sample.tags == 1).all())
            assert sample.y.shape == (1, 12)
            assert sample.y[0, 7] == pytest.approx(sample.u0_atomization, abs=1e-3)
    every = sids["train"] + sids["val"] + sids["test"]
    assert sorted(every) == sorted(set(range(1, DEMO_MOLECULES + 1)) - excluded)


def test_fairchem_key_mapping_and_collater_batch_the_targets(lmdb_dir):
    from fairchem.core.datasets import LmdbDataset, data_list_collater

    dataset = LmdbDataset({"src": str(lmdb_dir / "train"),
                           "key_mapping": {"u0_atomization": "energy"}})
    samples = [dataset[i] for i in range(4)]
    del dataset
    batch = data_list_collater(samples, otf_graph=True)
    assert batch.y.shape == (4, 12) and batch.energy.shape == (4,)
    assert batch.natoms.tolist() == [int(s.natoms) for s in samples]
    assert batch.pos.shape == (int(batch.natoms.sum()), 3) and batch.cell.shape == (4, 3, 3)
    assert np.allclose(batch.energy.numpy(), batch.y[:, 7].numpy(), atol=1e-3)
    assert batch.sid.tolist() == [int(s.sid) for s in samples]


def test_demo_u0_atomization_is_the_emt_energy_of_the_stored_geometry(lmdb_dir):
    from ase import Atoms
    from ase.calculators.emt import EMT

    for sample in lmdb_samples(lmdb_dir / "val"):
        atoms = Atoms(numbers=sample.atomic_numbers.numpy().astype(int),
                      positions=sample.pos.numpy().astype(np.float64))
        atoms.calc = EMT()
        # 1e-6 Ha rounding in the file, float32 positions
        assert sample.u0_atomization == pytest.approx(atoms.get_potential_energy(), abs=2e-3)


def test_tar_bz2_archive_gives_the_same_lmdbs(raw_dir, lmdb_dir, tmp_path):
    archive = tmp_path / "dsgdb9nsd.xyz.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        for path in sorted(raw_dir.glob("dsgdb9nsd_*.xyz"), reverse=True):  # order must not matter
            tar.add(path, arcname=path.name)
    out = tmp_path / "from_tar"
    prepare_qm9(archive, out, exclude=raw_dir / "uncharacterized.txt", seed=1,
                subtract_atomrefs=True, progress=False)
    for split in ("train", "val", "test"):
        ours, theirs = lmdb_samples(out / split), lmdb_samples(lmdb_dir / split)
        assert len(ours) == len(theirs) > 0
        for a, b in zip(ours, theirs):
            assert sorted(a.keys()) == sorted(b.keys())
            for key in a.keys():
                va, vb = a[key], b[key]
                assert (bool((va == vb).all()) if hasattr(va, "shape") else va == vb), key


def test_malformed_record_in_an_archive_names_member_and_line(raw_dir, tmp_path):
    bad = tmp_path / "bad.xyz"
    text = (raw_dir / "dsgdb9nsd_000005.xyz").read_text().split("\n")
    text[3] = text[3].replace("\t", "\tx", 1)
    bad.write_text("\n".join(text))
    archive = tmp_path / "release.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        tar.add(raw_dir / "dsgdb9nsd_000001.xyz", arcname="dsgdb9nsd_000001.xyz")
        tar.add(bad, arcname="dsgdb9nsd_000005.xyz")
    out = tmp_path / "out"
    with pytest.raises(QM9FormatError, match=r"release.tar.bz2:dsgdb9nsd_000005.xyz, line 4: "):
        prepare_qm9(archive, out, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))  # nothing half-written


def test_no_overwrite_without_the_flag_and_atomic_replace(raw_dir, tmp_path):
    out = tmp_path / "lmdb"
    prepare_qm9(raw_dir, out, seed=1, progress=False)
    before = (out / "train" / "data.lmdb").read_bytes()
    with pytest.raises(InputError, match="--overwrite"):
        prepare_qm9(raw_dir, out, seed=2, progress=False)
    assert (out / "train" / "data.lmdb").read_bytes() == before
    prepare_qm9(raw_dir, out, seed=2, overwrite=True, progress=False)
    assert json.loads((out / "metadata.json").read_text())["seed"] == 2
    assert (out / "train" / "data.lmdb").read_bytes() != before
    assert not list(tmp_path.glob(".lmdb.*"))


def test_cli_make_demo_data_then_prepare_qm9(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "lmdb"
    made = subprocess.run([*est_fairchem_cli(), "make-demo-data", "--task", "qm9", "--out", str(raw),
                           "--systems", "12"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert len(list(raw.glob("dsgdb9nsd_*.xyz"))) == 12 and (raw / "uncharacterized.txt").exists()
    run = [*est_fairchem_cli(), "prepare-qm9", "--raw", str(raw), "--out", str(out),
           "--exclude", str(raw / "uncharacterized.txt"), "--subtract-atomrefs"]
    converted = subprocess.run(run, capture_output=True, text=True)
    assert converted.returncode == 0, converted.stderr
    assert "2 indices accepted" in converted.stdout and "2 molecules excluded" in converted.stdout
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["samples"] == dict(zip(("train", "val", "test"), split_sizes(10)))
    assert metadata["subtract_atomrefs"] is True
    refused = subprocess.run(run, capture_output=True, text=True)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    (raw / "dsgdb9nsd_000004.xyz").write_text("4\ngdb 4\n")
    broken = subprocess.run([*est_fairchem_cli(), "prepare-qm9", "--raw", str(raw), "--out",
                             str(tmp_path / "other")], capture_output=True, text=True)
    assert broken.returncode == 2
    assert broken.stderr.strip().splitlines()[-1].startswith(  # after the progress bar
        f"est-fairchem prepare-qm9: {raw / 'dsgdb9nsd_000004.xyz'}, line 2: expected")
    shutil.rmtree(raw)
    missing = subprocess.run(run + ["--overwrite"], capture_output=True, text=True)
    assert missing.returncode == 2 and "not found" in missing.stderr
