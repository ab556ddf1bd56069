"""`est-fairchem graph-stats`: avg_num_nodes and avg_degree of a config's training split, counted
with the model's own neighbour search, against ASE's neighbour list (an independent count)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from ase.neighborlist import neighbor_list

from est_fairchem.cli import main
from est_fairchem.tools.graph_stats import graph_statistics


def _database(path, structures):
    with connect(str(path)) as db:
        for atoms in structures:
            atoms.calc = SinglePointCalculator(atoms, energy=0.0)
            db.write(atoms)
    return path


def _config(tmp_path, src, use_pbc: bool, radius: float, neighbors: int):
    config = {
        "dataset": {"train": {"format": "ase_db", "src": str(src),
                              "a2g_args": {"r_energy": True}}},
        "model": {"name": "hydra",
                  "backbone": {"model": "equiformer_v2_backbone", "max_radius": radius,
                               "max_neighbors": neighbors, "use_pbc": use_pbc,
                               "avg_degree": 6.5, "avg_num_nodes": 77.0},
                  "heads": {"energy": {"module": "equiformerV2_scalar_head"}}},
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _ase_degrees(structures, radius: float, cap: int) -> np.ndarray:
    degrees = []
    for atoms in structures:
        counts = np.bincount(neighbor_list("i", atoms, radius), minlength=len(atoms))
        degrees.append(np.minimum(counts, cap))
    return np.concatenate(degrees)


@pytest.fixture
def molecules():
    structures = [molecule(name) for name in ("CH4", "C6H6", "H2O", "CH3CH2OH")]
    for atoms in structures:
        atoms.pbc = False
    return structures


def test_molecules_count_every_neighbour_within_the_cutoff_up_to_the_limit(tmp_path, molecules):
    src = _database(tmp_path / "molecules.db", molecules)
    for radius, cap in ((5.0, 500), (2.0, 500), (5.0, 4)):
        stats = graph_statistics(_config(tmp_path, src, False, radius, cap))
        expected = _ase_degrees(molecules, radius, cap)
        assert stats.avg_degree == pytest.approx(expected.mean(), rel=1e-12)
        assert stats.avg_num_nodes == pytest.approx(np.mean([len(a) for a in molecules]))
        assert stats.capped_fraction == pytest.approx(np.mean(expected >= cap))
        assert stats.structures == stats.total == 4


def test_periodic_structures_count_their_images(tmp_path):
    rng = np.random.default_rng(0)
    structures = []
    for element, size in (("Cu", 1), ("Al", 2), ("Ni", 2)):
        atoms = bulk(element, "fcc", a=3.6, cubic=True).repeat(size)
        atoms.rattle(0.05, rng=rng)
        structures.append(atoms)
    src = _database(tmp_path / "bulk.db", structures)
    stats = graph_statistics(_config(tmp_path, src, True, 4.0, 500))
    assert stats.avg_degree == pytest.approx(_ase_degrees(structures, 4.0, 500).mean())
    assert stats.avg_degree > 12  # periodic images: the second shell (3.6 A) is within 4 A


def test_the_command_names_what_the_config_says_beside_what_the_data_give(tmp_path, molecules,
                                                                          capsys):
    config = _config(tmp_path, _database(tmp_path / "m.db", molecules), False, 5.0, 500)
    assert main(["graph-stats", str(config), "--json", str(tmp_path / "stats.json")]) == 0
    out = capsys.readouterr().out
    expected = _ase_degrees(molecules, 5.0, 500).mean()
    assert f"avg_degree:    {expected:.4f}" in out
    assert f"mismatch:      model.backbone.avg_degree is 6.5, the data give {expected:.4f}" in out
    assert "model.backbone.avg_num_nodes is 77" in out
    assert (tmp_path / "stats.json").exists()
    # --check makes a mismatch an exit status; an existing --json is not replaced
    assert main(["graph-stats", str(config), "--check"]) == 1
    assert main(["graph-stats", str(config), "--json", str(tmp_path / "stats.json")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_sample_of_a_large_split_is_seeded(tmp_path, molecules):
    config = _config(tmp_path, _database(tmp_path / "m.db", molecules * 5), False, 5.0, 500)
    first = graph_statistics(config, max_structures=7, seed=3)
    assert first.structures == 7 and first.total == 20
    assert graph_statistics(config, max_structures=7, seed=3) == first


def test_fairchems_overrides_point_the_command_at_other_data(tmp_path, molecules, capsys):
    """`--dataset.train.src=...` as fairchem takes it, and a selection holding `=` (which
    fairchem's own parser splits wrongly) picks the rows; a malformed override is one line."""
    config = _config(tmp_path, tmp_path / "missing.db", False, 5.0, 500)
    db = tmp_path / "mine.db"
    with connect(str(db)) as handle:
        for atoms in molecules:
            atoms.calc = SinglePointCalculator(atoms, energy=0.0)
            handle.write(atoms, kind="small" if len(atoms) <= 5 else "large")
    small = [atoms for atoms in molecules if len(atoms) <= 5]
    assert main(["graph-stats", str(config), f"--dataset.train.src={db}",
                 "--dataset.train.select_args.selection=kind=small",
                 "--model.backbone.max_radius=2.0"]) == 0
    out = capsys.readouterr().out
    assert f"all {len(small)} structures" in out and "max_radius 2 A" in out
    assert f"avg_degree:    {_ase_degrees(small, 2.0, 500).mean():.4f}" in out
    assert main(["graph-stats", str(config), "--dataset.train.src"]) == 2
    assert "expected --key.path=value" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the other commands take no overrides
        main(["make-demo-data", "--task", "bulk", "--out", str(tmp_path / "d"), "--x.y=1"])
    assert "unrecognized arguments: --x.y=1" in capsys.readouterr().err
