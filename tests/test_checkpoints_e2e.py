"""Checkpoints users already have, through the real `fairchem` command: an EquiformerV2 run
warm-starts EST with identical predictions and is fine-tuned; the EST checkpoint then loads in
fairchem's OCPCalculator in a fresh process and relaxes structures, and runs fairchem's
`--mode run-relaxations`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from est_fairchem.data.demo_relaxations import RelaxationSizes, make_relaxation_demo
from est_fairchem.data.demo_s2ef import DemoSizes, make_s2ef_demo
from est_fairchem.data.lmdb_writer import write_lmdb
from est_fairchem.tools import fairchem_runs
from tests.model_utils import REPO, est_fairchem_cli, lmdb_samples

DEMO = REPO / "configs/oc20/s2ef/demo"
pytestmark = pytest.mark.e2e


def _losses(log: Path) -> list[float]:
    return [float(m) for m in re.findall(r"\bloss: ([0-9.eE+-]+)", log.read_text())]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """EquiformerV2 trained with EMA -> `est-fairchem warm-start` -> EST fine-tuned."""
    root = tmp_path_factory.mktemp("checkpoints")
    data = root / "s2ef"
    make_s2ef_demo(data, seed=1, sizes=DemoSizes(train_systems=24, frames_per_system=4),
                   progress=False)
    paths = [f"--dataset.train.src={data / 'train'}", f"--dataset.val.src={data / 'val'}",
             "--print-every=4", "--optim.eval_every=24"]
    run_dir = root / "runs"
    eqv2_dir = fairchem_runs.train(DEMO / "eqv2_demo.yml", run_dir, "eqv2",
                                   [*paths, "--optim.max_epochs=3", "--optim.ema_decay=0.9"])
    warm = root / "est_warm.pt"
    result = subprocess.run(
        [*est_fairchem_cli(), "warm-start", "--from",
         str(eqv2_dir / "checkpoint.pt"), "--config", str(DEMO / "est_eqv2_demo.yml"),
         "--out", str(warm)],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    est_dir = fairchem_runs.train(DEMO / "est_eqv2_demo.yml", run_dir, "est-finetune",
                                  [*paths, "--optim.max_epochs=1", f"--checkpoint={warm}"])
    return {"root": root, "data": data, "paths": paths, "run_dir": run_dir, "eqv2": eqv2_dir,
            "warm": warm, "warm_stdout": result.stdout, "est": est_dir}


def _predict(runs, config: str, checkpoint: Path, dataset: Path, name: str,
             extra: tuple[str, ...] = ()) -> dict:
    path = fairchem_runs.predict(DEMO / config, checkpoint, dataset, runs["run_dir"], name,
                                 [*runs["paths"], *extra])
    return dict(np.load(path))


def test_warm_started_checkpoint_predicts_as_the_equiformer_v2_checkpoint(runs):
    test_id = runs["data"] / "test_id"
    # with EMA in the config, fairchem predicts with the checkpoint's EMA weights
    eqv2 = _predict(runs, "eqv2_demo.yml", runs["eqv2"] / "checkpoint.pt", test_id, "p-eqv2",
                    ("--optim.ema_decay=0.9",))
    est = _predict(runs, "est_eqv2_demo.yml", runs["warm"], test_id, "p-warm")
    assert list(eqv2["ids"]) == list(est["ids"])
    # float32, and EquiformerV2 draws a random roll of each edge frame in every call
    np.testing.assert_allclose(est["energy"], eqv2["energy"], rtol=0, atol=2e-4)
    np.testing.assert_allclose(est["forces"], eqv2["forces"], rtol=0, atol=2e-4)
    assert np.abs(eqv2["forces"]).max() > 0.05  # a non-trivial prediction was compared
    assert "EMA weights" in runs["warm_stdout"]


def test_fine_tuning_continues_from_the_equiformer_v2_weights(runs):
    eqv2_losses = _losses(runs["run_dir"] / "logs" / "eqv2.log")
    finetune_losses = _losses(runs["run_dir"] / "logs" / "est-finetune.log")
    assert finetune_losses, "the fine-tuning run logged no training loss"
    # from the EquiformerV2 weights, not from scratch: far below EquiformerV2's initial loss
    assert np.mean(finetune_losses[:3]) < 0.7 * np.mean(eqv2_losses[:3])
    assert (runs["est"] / "checkpoint.pt").is_file()


def test_config_key_warm_start_through_fairchem_train(runs):
    """`model.warm_start.checkpoint` on the fairchem command line: same start, no extra step."""
    fairchem_runs.train(
        DEMO / "est_eqv2_demo_warm_start.yml", runs["run_dir"], "est-config-key",
        [*runs["paths"], "--optim.max_epochs=1",
         f"--model.warm_start.checkpoint={runs['eqv2'] / 'checkpoint.pt'}"],
    )
    losses = _losses(runs["run_dir"] / "logs" / "est-config-key.log")
    eqv2_losses = _losses(runs["run_dir"] / "logs" / "eqv2.log")
    assert np.mean(losses[:3]) < 0.7 * np.mean(eqv2_losses[:3])


def test_config_key_without_a_checkpoint_says_what_to_set(runs):
    with pytest.raises(RuntimeError, match="model.warm_start.checkpoint is not set"):
        fairchem_runs.train(DEMO / "est_eqv2_demo_warm_start.yml", runs["run_dir"],
                            "est-no-key", runs["paths"])


def test_est_checkpoint_in_ocp_calculator_without_importing_the_plugin(runs):
    """A fresh process loads the EST checkpoint by its dotted class paths, relaxes a slab, and
    agrees with `fairchem --mode predict` on the same structure."""
    from fairchem.core.preprocessing import AtomsToGraphs

    from est_fairchem.testing.structures import made_slab

    checkpoint = runs["est"] / "checkpoint.pt"
    script = f"""
import json, sys
from fairchem.core.common.relaxation.ase_utils import OCPCalculator
assert "est_fairchem" not in sys.modules
calc = OCPCalculator(checkpoint_path={str(checkpoint)!r}, trainer="equiformerv2_forces",
                     cpu=True, seed=0)
imported = "est_fairchem.models.equiformer_v2.backbone" in sys.modules
from ase.optimize import BFGS
from est_fairchem.testing.structures import made_slab
atoms = made_slab()
atoms.calc = calc
energy, forces = float(atoms.get_potential_energy()), atoms.get_forces().tolist()
start = atoms.positions.copy()
BFGS(atoms, logfile=None).run(fmax=0.05, steps=25)
print(json.dumps({{"imported": imported, "energy": energy, "forces": forces,
    "relaxed_forces": atoms.get_forces().tolist(),
    "moved": (atoms.positions - start).tolist()}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=runs["root"])
    assert result.returncode == 0, result.stderr[-3000:]
    calc = json.loads(result.stdout.strip().splitlines()[-1])
    assert calc["imported"], "fairchem did not import the model from the checkpoint's config"

    atoms = made_slab()
    sample = AtomsToGraphs(r_edges=False, r_fixed=True, r_pbc=True).convert(atoms, sid=0)
    sample.fid = 0
    (runs["root"] / "one").mkdir()
    write_lmdb(runs["root"] / "one" / "data.lmdb", [sample])
    pred = _predict(runs, "est_eqv2_demo.yml", checkpoint, runs["root"] / "one", "p-one")
    free = atoms.get_tags() > 0
    assert abs(calc["energy"] - float(pred["energy"][0])) < 2e-4
    np.testing.assert_allclose(np.array(calc["forces"])[free], pred["forces"], atol=2e-4)

    # the demo model's forces are direct (not the energy's gradient), so the energy need not
    # fall along the relaxation (it rose by 6e-4 eV with one thread): the forces do
    def fmax(forces):
        return np.linalg.norm(np.array(forces)[free], axis=1).max()

    moved = np.linalg.norm(np.array(calc["moved"]), axis=1)
    assert fmax(calc["relaxed_forces"]) < fmax(calc["forces"])
    assert moved[~free].max() == 0 and moved[free].max() > 1e-3  # FixAtoms kept


def test_run_relaxations_with_an_est_checkpoint(runs):
    data = runs["root"] / "is2rs"
    make_relaxation_demo(data, seed=2, sizes=RelaxationSizes(train_systems=4), progress=False,
                         task="is2rs")
    out = fairchem_runs.run_relaxations(
        DEMO / "est_eqv2_demo_relax.yml", runs["est"] / "checkpoint.pt", data / "test_id",
        runs["run_dir"], "relax", [*runs["paths"], "--task.relaxation_steps=20"],
    )
    result = np.load(out)
    samples = lmdb_samples(data / "test_id")
    by_sid = {str(s.sid): s for s in samples}
    assert sorted(result["ids"].tolist()) == sorted(by_sid)
    positions = np.split(result["pos"], result["chunk_idx"])
    for sid, pos in zip(result["ids"], positions):
        sample = by_sid[str(sid)]
        moved = np.linalg.norm(pos - sample.pos.numpy(), axis=1)
        fixed = sample.fixed.numpy() == 1
        assert moved[fixed].max() < 1e-6 and moved[~fixed].max() > 1e-3
    log = (runs["run_dir"] / "logs" / "relax.log").read_text()
    assert "positions_average_distance_within_threshold" in log and "energy_mae" in log
