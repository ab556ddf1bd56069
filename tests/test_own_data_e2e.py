"""Your own data through the real `fairchem` command: ASE databases (fairchem's ase_db format)
with stress, an EquiformerV2 checkpoint in the OMat24 layout (energy, force and rank-2 stress
heads), and EST fine-tuned from it on real DFT data (oxides.db), predicted, compared with the
warm start untrained, and used for a relaxation (docs/guide/own_data.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from est_fairchem.tools import fairchem_runs
from tests.model_utils import REPO

ASE_DB = REPO / "configs/ase_db/demo"
OXIDES = REPO.parent / "shared/data/fairchem-tutorial/oxides.db"
pytestmark = pytest.mark.e2e
EPOCHS = 2  # of the oxides fine-tuning (the config has 3; 2 already beat the warm start clearly)


def _sources(train: Path, val: Path, test: Path) -> list[str]:
    return [f"--dataset.train.src={train}", f"--dataset.val.src={val}",
            f"--dataset.test.src={test}", "--print-every=5"]


@pytest.fixture(scope="module")
def bulk(bulk_db, tmp_path_factory):
    """The made EMT bulk databases with stress (conftest ``bulk_db``); plain EquiformerV2 with
    fairchem's OMat24 heads and EST-EquiformerV2 with the equivariant stress head, one epoch
    each."""
    root = tmp_path_factory.mktemp("own_data")
    data = bulk_db
    sources = _sources(data / "train.db", data / "val.db", data / "test.db")
    run_dir = root / "runs"
    one_epoch = [*sources, "--optim.max_epochs=1"]
    eqv2 = fairchem_runs.train(ASE_DB / "eqv2_stress.yml", run_dir, "eqv2", one_epoch)
    est = fairchem_runs.train(ASE_DB / "est_eqv2_stress.yml", run_dir, "est", one_epoch)
    return {"root": root, "data": data, "sources": sources, "run_dir": run_dir, "eqv2": eqv2,
            "est": est}


def _calculator(checkpoint: Path):
    from fairchem.core.common.relaxation.ase_utils import OCPCalculator

    return OCPCalculator(checkpoint_path=str(checkpoint), trainer="equiformerv2_forces",
                         cpu=True, seed=0)


@pytest.fixture(scope="module")
def est_predictions(bulk) -> dict[str, np.ndarray]:
    """`fairchem --mode predict` of the trained EST on the test database (one run, read by
    the tests below)."""
    path = fairchem_runs.predict(ASE_DB / "est_eqv2_stress.yml", bulk["est"] / "checkpoint.pt",
                                 bulk["data"] / "test.db", bulk["run_dir"], "p-est",
                                 bulk["sources"])
    return dict(np.load(path))


def test_est_trains_and_predicts_stress_from_an_ase_database(bulk, est_predictions):
    log = (bulk["run_dir"] / "logs" / "est.log").read_text()
    assert "stress_mae" in log and "stress_anisotropic_mae" in log  # validated
    stress = est_predictions["stress"].reshape(-1, 3, 3)
    assert stress.shape == (4, 3, 3) and np.isfinite(stress).all()
    np.testing.assert_allclose(stress, stress.transpose(0, 2, 1), atol=1e-6)


def test_ocp_calculator_gives_the_stress_of_fairchem_predict(bulk, est_predictions):
    """ASE's stress (Voigt, eV/A^3, ASE's sign: the data's) from fairchem's calculator equals
    `fairchem --mode predict` on the same structure."""
    from ase.constraints import full_3x3_to_voigt_6_stress
    from ase.db import connect

    predictions = est_predictions
    first = [str(i).split("_")[0] for i in predictions["ids"]].index("0")  # sid_fid
    expected = full_3x3_to_voigt_6_stress(predictions["stress"][first].reshape(3, 3))
    with connect(bulk["data"] / "test.db") as db:
        atoms = next(db.select()).toatoms()
    atoms.calc = _calculator(bulk["est"] / "checkpoint.pt")
    stress = atoms.get_stress()
    assert stress.shape == (6,) and np.isfinite(stress).all()
    np.testing.assert_allclose(stress, expected, atol=2e-5)


needs_oxides = pytest.mark.skipif(not OXIDES.exists(), reason=f"no {OXIDES}")


def _oxide_errors(predictions: Path, selection: str) -> dict[str, float]:
    """Energy-per-atom MAE (meV/atom), force MAE (eV/A) and mean energies of the predictions
    against oxides.db's rows (fairchem's ids count the selected rows in database order)."""
    from ase.db import connect

    with connect(OXIDES) as db:
        rows = list(db.select(selection))
    out = np.load(predictions)
    rows = [rows[int(str(i).split("_")[0])] for i in out["ids"]]
    energy, true = out["energy"].reshape(-1), np.array([row.energy for row in rows])
    natoms = np.array([row.natoms for row in rows])
    forces = np.split(out["forces"], out["chunk_idx"])
    force_errors = np.concatenate([np.abs(f - row.forces).ravel() for f, row in zip(forces, rows)])
    return {"energy_per_atom_mev": float(1000 * np.mean(np.abs(energy - true) / natoms)),
            "forces": float(force_errors.mean()), "mean_energy": float(energy.mean()),
            "mean_true_energy": float(true.mean())}


@pytest.fixture(scope="module")
def oxides(bulk):
    """EST warm-started from the OMat24-layout EquiformerV2 checkpoint (its stress head left
    out: oxides.db has no stress), fine-tuned on oxides.db; the same warm start
    trained with a learning rate of zero is the zero-training baseline (same fitted element
    references and normalizer, same checkpoint path through fairchem). The tuned run trains
    EPOCHS epochs (the config's 3 are what a user runs)."""
    config = ASE_DB / "est_eqv2_finetune_oxides.yml"
    sources = [f"--dataset.{split}.src={OXIDES}" for split in ("train", "val", "test")]
    warm = f"--model.warm_start.checkpoint={bulk['eqv2'] / 'checkpoint.pt'}"
    run_dir = bulk["run_dir"]
    # fairchem predicts the whole test split at every new best validation while training; the
    # tests read the predictions made below, so training runs predict one test row
    one_test_row = "--dataset.test.first_n=1"
    zero = fairchem_runs.train(config, run_dir, "oxides-zero",
                               [*sources, warm, one_test_row, "--optim.max_epochs=1",
                                "--optim.lr_initial=0", "--optim.scheduler_params.max_lr=0"])
    tuned = fairchem_runs.train(config, run_dir, "oxides-tuned",
                                [*sources, warm, one_test_row, f"--optim.max_epochs={EPOCHS}"])
    errors = {}
    for name, checkpoint in (("zero", zero), ("tuned", tuned)):
        path = fairchem_runs.predict(config, checkpoint / "checkpoint.pt", OXIDES, run_dir,
                                     f"p-oxides-{name}", [*sources, warm])
        errors[name] = _oxide_errors(path, "natoms=24")
    return {"run_dir": run_dir, "tuned": tuned, "errors": errors}


@needs_oxides
def test_fine_tuning_from_an_eqv2_checkpoint_beats_the_untrained_warm_start(oxides):
    """Measured here (test split: the 24-atom polymorphs): 67.0 meV/atom and 0.0117 eV/A for
    the warm start untrained, 44.0 meV/atom and 0.0109 eV/A after 3 epochs; with the test's
    2 epochs (and the current code) 62.5 meV/atom untrained, 40.6 meV/atom fine-tuned."""
    errors = oxides["errors"]
    print(errors)
    assert "left out" in (oxides["run_dir"] / "logs" / "oxides-tuned.log").read_text()
    assert errors["tuned"]["energy_per_atom_mev"] < errors["zero"]["energy_per_atom_mev"]
    # predictions are total DFT energies (eV): the element references were added back
    tuned = errors["tuned"]
    assert abs(tuned["mean_energy"] - tuned["mean_true_energy"]) < 0.01 * abs(tuned["mean_true_energy"])


@needs_oxides
def test_fine_tuned_model_relaxes_an_oxide(oxides):
    """fairchem's calculator with the fine-tuned checkpoint: total DFT energies, and a BFGS
    relaxation of a rattled oxide. (The data are equations of state whose forces are near
    zero, so the model's forces are too: the relaxation is a check of the path, not of the
    forces it finds.)"""
    from ase.db import connect
    from ase.optimize import BFGS

    with connect(OXIDES) as db:
        row = next(db.select("natoms=24"))
    atoms = row.toatoms()
    atoms.calc = _calculator(oxides["tuned"] / "checkpoint.pt")
    assert abs(atoms.get_potential_energy() - row.energy) / row.natoms < 0.2  # eV/atom
    atoms.positions += np.random.default_rng(0).normal(0, 0.1, size=atoms.positions.shape)
    start, cell = atoms.positions.copy(), atoms.cell.array.copy()
    BFGS(atoms, logfile=None).run(fmax=1e-4, steps=10)
    assert np.isfinite(atoms.get_potential_energy()) and np.isfinite(atoms.get_forces()).all()
    assert np.abs(atoms.positions - start).max() > 1e-5
    assert np.array_equal(atoms.cell.array, cell)


@needs_oxides
def test_fairchems_finetune_config_takes_an_est_backbone(bulk):
    """`finetune_config.starting_checkpoint` with an EST checkpoint: the EST backbone and its
    trained weights come from the checkpoint, new heads are trained on oxides.db, and
    `load_balancing: atoms` is accepted (fairchem refuses it for plain ase_db)."""
    import torch

    sources = [f"--dataset.{split}.src={OXIDES}" for split in ("train", "val", "test")]
    start = bulk["est"] / "checkpoint.pt"
    # what is checked is the loading: a few training rows (4 steps), one val and test row
    tuned = fairchem_runs.train(
        ASE_DB / "est_finetune_from_est_oxides.yml", bulk["run_dir"], "finetune-config",
        [*sources, f"--model.finetune_config.starting_checkpoint={start}",
         "--optim.max_epochs=1", "--dataset.train.first_n=16", "--dataset.val.first_n=1",
         "--dataset.test.first_n=1"])
    log = (bulk["run_dir"] / "logs" / "finetune-config.log").read_text()
    assert "Found and loaded fine-tuning checkpoint" in log
    state = torch.load(tuned / "checkpoint.pt", map_location="cpu", weights_only=False)
    keys = state["state_dict"]
    assert any(".update.spherical.attention." in key for key in keys)  # the EST backbone
    assert not any("output_heads.stress" in key for key in keys)  # the new heads only


def test_est_trains_on_a_folder_of_structure_files(bulk, tmp_path):
    """fairchem's ase_read format: the bulk rows as extxyz files (energy, forces and stress
    in the files), trained and validated with the stress config."""
    from ase.db import connect
    from ase.io import write

    sources = []
    for split in ("train", "val", "test"):
        folder = tmp_path / split
        folder.mkdir()
        with connect(bulk["data"] / f"{split}.db") as db:
            for row in db.select():
                write(folder / f"{row.id}.extxyz", row.toatoms())
        sources.append(f"--dataset.{split}.src={folder}")
    checkpoint = fairchem_runs.train(ASE_DB / "est_eqv2_stress_ase_read.yml", bulk["run_dir"],
                                     "ase-read", [*sources, "--optim.max_epochs=1"])
    log = (bulk["run_dir"] / "logs" / "ase-read.log").read_text()
    assert "stress_mae" in log and (checkpoint / "checkpoint.pt").exists()
