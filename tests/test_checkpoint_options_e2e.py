"""Silent wrong results, through the real `fairchem` command on a checkpoint fairchem trained (the
tiny EST config, 2 steps, with EMA and element references): `--mode predict` refuses a model
configured with other EST options than the checkpoint's unless the config allows it, refuses a
NaN position naming the system, and `est-fairchem check-equivariance` reports the energy
`--mode predict` writes (normalizer, element references and EMA weights applied)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from est_fairchem.data.demo_s2ef import DemoSizes, make_s2ef_demo
from est_fairchem.data.lmdb_writer import write_lmdb
from est_fairchem.tools import fairchem_runs
from tests.model_utils import REPO, lmdb_samples

CONFIG = REPO / "configs/oc20/s2ef/demo/est_eqv2_tiny_deterministic.yml"
pytestmark = pytest.mark.e2e


def _molecule_in_a_box():
    """Rattled ethanol in a 12 A periodic box: every atom has at most 8 neighbours within the
    tiny config's 4 A cutoff, so fairchem's graph (max_neighbors 8) and check-equivariance's
    (every neighbour) are the same."""
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    atoms.positions += np.random.default_rng(0).normal(0, 0.05, size=atoms.positions.shape)
    atoms.set_cell([12.0, 12.0, 12.0])
    atoms.center()
    atoms.pbc = True
    return atoms


def _one_record_lmdb(folder: Path, atoms, sid: int) -> Path:
    from fairchem.core.preprocessing import AtomsToGraphs

    sample = AtomsToGraphs(r_edges=False, r_fixed=True, r_pbc=True).convert(atoms, sid=sid)
    sample.fid = 0
    folder.mkdir()
    write_lmdb(folder / "data.lmdb", [sample])
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("options")
    data = root / "s2ef"
    make_s2ef_demo(data, seed=5, sizes=DemoSizes(train_systems=4, frames_per_system=2),
                   progress=False)
    references = np.zeros(119)
    references[[1, 6, 8]] = [-1.5, -4.0, -3.0]  # H, C, O (the molecule's elements), eV
    np.savez(root / "elementrefs.npz", element_references=references)
    paths = [f"--dataset.train.src={data / 'train'}", f"--dataset.val.src={data / 'val'}"]
    run_dir = root / "runs"
    checkpoint_dir = fairchem_runs.train(
        CONFIG, run_dir, "tiny", [*paths, "--optim.max_epochs=1",
                                  "--dataset.train.transforms.element_references.energy.file="
                                  f"{root / 'elementrefs.npz'}"])
    atoms = _molecule_in_a_box()
    atoms.write(root / "ethanol.traj")
    return {"root": root, "data": data, "paths": paths, "run_dir": run_dir, "atoms": atoms,
            "checkpoint": checkpoint_dir / "checkpoint.pt", "references": references,
            "molecule": _one_record_lmdb(root / "molecule", atoms, sid=77)}


def _predict(run, name: str, dataset: Path, *extra: str) -> dict:
    path = fairchem_runs.predict(CONFIG, run["checkpoint"], dataset, run["run_dir"], name,
                                 [*run["paths"], *extra])
    return dict(np.load(path))


def test_check_equivariance_reports_the_energy_fairchem_predicts(run):
    import torch

    from est_fairchem.tools.check_equivariance import check_equivariance

    checkpoint = torch.load(run["checkpoint"], weights_only=False)
    assert checkpoint["ema"] is not None and set(checkpoint["elementrefs"]) == {"energy"}
    state = {k.removeprefix("module."): v for k, v in checkpoint["state_dict"].items()}
    assert state["backbone._extra_state"]["est_options"]["est.num_points"] == 16  # as trained
    predicted = _predict(run, "p-molecule", run["molecule"])
    result = check_equivariance(CONFIG, run["checkpoint"], run["root"] / "ethanol.traj",
                                rotations=2)
    energy = result["outputs"]["energy"]
    assert energy["denormalized_with"] == ["normalizer", "element references"]
    assert result["outputs"]["forces"]["denormalized_with"] == ["normalizer"]
    reference_sum = run["references"][run["atoms"].numbers].sum()  # -20.5 eV for C2H6O
    # float32 prediction against the float64 check, same graph; EquiformerV2 also rolls each
    # edge frame at random in every call
    assert abs(energy["value"] - float(predicted["energy"].reshape(-1)[0])) < 2e-4
    assert abs(energy["value"] - reference_sum) > 1.0  # the normalised output is not reported
    assert list(predicted["ids"]) == ["77_0"]


def test_predict_refuses_changed_est_options_unless_allowed(run):
    with pytest.raises(RuntimeError) as error:
        _predict(run, "p-changed", run["molecule"], "--model.backbone.est.num_points=24")
    log = str(error.value)
    assert "InputError" in log and "est.num_points: trained 16, configured 24" in log
    assert "allow_option_change: true" in log
    allowed = _predict(run, "p-allowed", run["molecule"], "--model.backbone.est.num_points=24",
                       "--model.backbone.est.allow_option_change=True")
    logged = (run["run_dir"] / "logs" / "p-allowed.log").read_text()
    assert "est.num_points: trained 16, configured 24" in logged  # the warning
    same = _predict(run, "p-same", run["molecule"])
    assert not np.allclose(allowed["forces"], same["forces"], rtol=0, atol=1e-6)


def test_predict_refuses_a_nan_position_naming_the_system(run):
    samples = lmdb_samples(run["data"] / "test_id")[:3]
    samples[1].pos[2, 0] = float("nan")
    folder = run["root"] / "nan"
    folder.mkdir()
    write_lmdb(folder / "data.lmdb", samples)
    with pytest.raises(RuntimeError) as error:
        _predict(run, "p-nan", folder)
    log = str(error.value)
    assert "InputError" in log
    assert f"sid {int(samples[1].sid)}, fid {int(samples[1].fid)}: pos holds NaN" in log
