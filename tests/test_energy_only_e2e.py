"""Energy-only own data through the real `fairchem` command: an ASE database of relaxed
structures with one energy each and no forces (made adsorption energies, slabs stored with
``pbc=(True, True, False)``), trained, validated and predicted with the configs of
``configs/ase_db/energy`` (docs/guide/own_data.md, "I have relaxed structures and energies")."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from est_fairchem.data.demo_adsorption import AdsorptionSizes, make_adsorption_demo
from est_fairchem.tools import fairchem_runs
from tests.model_utils import REPO

ENERGY = REPO / "configs/ase_db/energy"
CONFIGS = ("est_equiformer", "equiformer", "est_eqv2", "eqv2")
pytestmark = pytest.mark.e2e


def _energies(path: Path) -> np.ndarray:
    from ase.db import connect

    with connect(path) as db:
        return np.array([row.energy for row in db.select()])


@pytest.fixture(scope="module")
def adsorption(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("energy_only")
    data = root / "adsorption"
    make_adsorption_demo(data, seed=0, sizes=AdsorptionSizes(train=16, val=4, test=4))
    sources = [f"--dataset.{split}.src={data / f'{split}.db'}" for split in ("train", "val", "test")]
    return {"data": data, "runs": root / "runs", "sources": [*sources, "--print-every=2"]}


@pytest.fixture(scope="module")
def trained(adsorption) -> dict[str, Path]:
    """Each energy-only config trained for 2 epochs (8 steps) on the made database."""
    return {name: fairchem_runs.train(ENERGY / f"{name}.yml", adsorption["runs"], name,
                                      [*adsorption["sources"], "--optim.max_epochs=2"])
            for name in CONFIGS}


@pytest.mark.parametrize("name", CONFIGS)
def test_an_energy_only_database_trains_with_a_normalizer_fitted_on_its_energies(
        name, adsorption, trained):
    log = (adsorption["runs"] / "logs" / f"{name}.log").read_text()
    assert "energy_within_threshold" in log  # validated with the IS2RE metrics
    assert "forces_mae" not in log  # energies only
    checkpoint = torch.load(trained[name] / "checkpoint.pt", map_location="cpu",
                            weights_only=False)
    fitted = checkpoint["normalizers"]["energy"]
    train = _energies(adsorption["data"] / "train.db")
    assert float(fitted["mean"]) == pytest.approx(train.mean(), abs=1e-4)
    assert float(fitted["rmsd"]) == pytest.approx(train.std(ddof=1), rel=1e-3)


@pytest.mark.parametrize("name", ("est_equiformer", "est_eqv2"))
def test_an_energy_only_model_predicts_energies_on_the_datas_scale(name, adsorption, trained):
    """Predictions are energies in eV of the test rows, in database order, de-normalized with
    the fitted values: within the spread of the data, where a normalizer from other data (the
    IS2RE demo's mean 2.66 eV) would put them about 7 eV away."""
    test = adsorption["data"] / "test.db"
    path = fairchem_runs.predict(ENERGY / f"{name}.yml", trained[name] / "checkpoint.pt", test,
                                 adsorption["runs"], f"predict-{name}", adsorption["sources"],
                                 task="is2re")
    predictions = np.load(path)
    rows = [int(str(i).split("_")[0]) for i in predictions["ids"]]  # <row index>_0
    assert rows == list(range(4))  # every test row, in database order
    energy, truth = predictions["energy"].reshape(-1), _energies(test)
    assert energy.shape == truth.shape and np.isfinite(energy).all()
    spread = _energies(adsorption["data"] / "train.db").std()
    assert np.abs(energy - truth).mean() < 2 * spread


def test_an_energy_only_model_validates_on_the_test_split(adsorption, trained):
    runs = adsorption["runs"]
    fairchem_runs.run_fairchem(
        ["--mode", "validate", "--config-yml", str(ENERGY / "est_eqv2.yml"), "--cpu",
         "--run-dir", str(runs), "--timestamp-id", "validate-est_eqv2", "--checkpoint",
         str(trained["est_eqv2"] / "checkpoint.pt"), *adsorption["sources"],
         f"--dataset.val.src={adsorption['data'] / 'test.db'}"],
        runs / "logs" / "validate-est_eqv2.log")
    log = (runs / "logs" / "validate-est_eqv2.log").read_text()
    maes = [float(v) for v in re.findall(r"energy_mae: ([0-9.eE+-]+)", log)]
    assert maes and all(np.isfinite(maes))
