"""benchmarks/accuracy.py: its configs are the models and data it says, its report reads runs.

The study itself is a benchmark (hours); these check what it is built from, without training.
"""

from __future__ import annotations

import json

import pytest

import accuracy  # benchmarks/ is on pytest's pythonpath
import accuracy_configs as configs

needs_oxides = pytest.mark.skipif(not configs.OXIDES_DB.exists(), reason="no ../shared oxides.db")


@needs_oxides
def test_oxide_splits_partition_the_database_by_polymorph():
    """Train, val and test are disjoint, cover all 295 rows, and each oxide's test rows are a
    cell size (polymorph) absent from its training rows."""
    from ase.db import connect

    db = connect(str(configs.OXIDES_DB))
    ids = {split: {row.id for row in db.select(selection)}
           for split, selection in configs.OXIDE_SPLITS.items()}
    assert sum(len(v) for v in ids.values()) == len(set().union(*ids.values())) == 295
    sizes = {split: {(row.formula.rstrip("0123456789"), row.natoms) for row in db.select(sel)}
             for split, sel in configs.OXIDE_SPLITS.items()}
    assert not {natoms for _, natoms in sizes["test"]} & {natoms for _, natoms in sizes["train"]}
    assert len({row.formula for row in db.select(configs.OXIDE_SPLITS["test"])}) == 5


def test_models_differ_only_in_their_est_block():
    """Within a study every model has the baseline's backbone options; only the class and
    the est: block change, and the plain baselines have no est: block."""
    from est_fairchem.tools.model_from_config import build_model

    size = configs.SIZES["small"]
    for models in (configs.QM9_MODELS, configs.OXIDE_MODELS):
        sections = {name: configs.model_section(model, size) for name, model in models.items()}
        baseline = next(name for name, model in models.items() if model.baseline)
        assert "est" not in sections[baseline]["backbone"]
        for name, section in sections.items():
            backbone = dict(section["backbone"])
            est = backbone.pop("est", None)
            assert (est is None) == (name == baseline)
            same_file = [n for n, m in models.items() if m.base == models[name].base]
            reference = dict(sections[same_file[0]]["backbone"])
            reference.pop("est", None)
            reference.pop("model")
            backbone.pop("model")
            assert backbone == reference
    # the QM9 baseline is the plain Equiformer of the EST-GA layout, and it builds
    section = configs.model_section(configs.QM9_MODELS["equiformer"], size)
    section["heads"] = {"u0_atomization": {"module": "est_fairchem.models.EquiformerScalarHead",
                                           "output_name": "u0_atomization"}}
    model = build_model({"model": section})
    assert type(model.backbone).__name__ == "EquiformerBackbone"


def test_qm9_config_uses_the_release_splits_and_subset_sizes(tmp_path):
    size = configs.SIZES["small"]
    model, target = configs.QM9_MODELS["pure_est_paper"], configs.QM9_TARGETS["homo"]
    train = configs.qm9_config(model, target, size, tmp_path, epochs=size.qm9_epochs)
    test = configs.qm9_config(model, target, size, tmp_path, epochs=size.qm9_epochs, split="test")
    assert train["dataset"]["train"]["first_n"] == size.qm9_train
    assert train["dataset"]["val"] == {"src": str(tmp_path / "val"), "first_n": size.qm9_val}
    assert test["dataset"]["val"] == {"src": str(tmp_path / "test"), "first_n": size.qm9_test}
    assert size.qm9_val <= 10_000 and size.qm9_test <= 10_831  # subsets of the release splits
    steps = size.qm9_epochs * -(-size.qm9_train // size.qm9_batch)
    assert train["optim"]["T_max"] == steps and train["optim"]["max_epochs"] == size.qm9_epochs
    assert train["optim"]["batch_size"] == size.qm9_batch
    assert train["model"]["backbone"]["est"] == {"preset": "paper"}
    # HOMO is standardised only; U0 gets per-element references fitted on the training split
    assert set(train["dataset"]["train"]["transforms"]) == {"normalizer"}
    u0 = configs.qm9_config(model, configs.QM9_TARGETS["u0"], size, tmp_path, epochs=3)
    fits = u0["dataset"]["train"]["transforms"]
    assert fits["element_references"]["fit"]["targets"] == ["u0_atomization"]
    assert list(fits["normalizer"]["fit"]["targets"]) == ["u0_atomization"]


def _run(model: str, protocol: str, seed: int, mae: float, step_time: float) -> dict:
    return {"study": "oxides", "target": "energy", "model": model, "protocol": protocol,
            "seed": seed, "epochs": 40, "steps": 1040, "parameters": 1000,
            "seconds_per_step": step_time, "train_seconds": step_time * 1040,
            "test_mae": mae, "best_val_mae": mae, "unit": "meV/atom",
            "curve": [{"step": 520, "seconds": 1.0, "val_mae": 2 * mae},
                      {"step": 1040, "seconds": 2.0, "val_mae": mae}]}


def test_report_gives_mean_and_spread_and_equal_time_epochs(tmp_path):
    for seed, (base, est) in enumerate([(10.0, 8.0), (12.0, 9.0), (11.0, 7.0)]):
        for name, mae, step_time in (("equiformer_v2", base, 0.1), ("est_eqv2_default", est, 0.2)):
            path = tmp_path / f"oxides-energy-{name}-steps-seed{seed}.json"
            path.write_text(json.dumps(_run(name, "steps", seed, mae, step_time)))
    finished = accuracy._finished(tmp_path)
    size = configs.SIZES["small"]
    half = round(size.oxide_epochs * 0.1 / 0.2)  # the baseline's step takes half the time
    assert accuracy.equal_time_epochs("oxides", "energy", "est_eqv2_default", size, finished) == half
    assert accuracy.equal_time_epochs("oxides", "energy", "est_eqv2_paper", size, finished) is None
    accuracy.write_report(tmp_path, "python benchmarks/accuracy.py", "small")
    table = json.loads((tmp_path / "summary.json").read_text())["table"]
    row = table["oxides/energy/steps"]["est_eqv2_default"]
    assert row["test_mae_mean"] == pytest.approx(8.0)
    assert row["test_mae_std"] == pytest.approx(1.0)
    assert table["oxides/energy/time"]["equiformer_v2"]["seeds"] == 3  # the shared runs
    assert "| est_eqv2_default | 8.00 ± 1.00 meV/atom | 8.00 ± 1.00 | 3 |" in (
        tmp_path / "table.md").read_text()
    assert (tmp_path / "curves_oxides_energy.png").stat().st_size > 0
    todo = accuracy.plan("oxides", [0, 1, 2], size, finished)
    assert ("oxides", "energy", "est_eqv2_paper", "steps", 0, size.oxide_epochs) in todo
    assert not any(run[2] == "equiformer_v2" for run in todo)  # its runs are done


def test_reference_floor_is_zero_for_linear_energies_and_per_atom_when_asked():
    """The least-squares element references recover energies linear in the composition
    exactly; a known residual comes back as its MAE (x 1000), per atom where asked."""
    import numpy as np

    import accuracy_baselines

    rng = np.random.default_rng(0)
    counts = np.zeros((40, 100))
    counts[:, [1, 6, 7, 8, 9]] = rng.integers(0, 9, size=(40, 5)) + 1  # H C N O F
    energies = counts @ rng.normal(size=100)
    train, test = (counts[:30], energies[:30]), (counts[30:], energies[30:])
    assert accuracy_baselines._fit_and_score(train, test, per_atom=False) < 1e-6
    shifted = (test[0], test[1] + 0.01 * test[0].sum(axis=1))  # 10 meV per atom off
    assert accuracy_baselines._fit_and_score(train, shifted, per_atom=True) == pytest.approx(10.0)
