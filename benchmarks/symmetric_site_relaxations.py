"""BFGS relaxations of adsorbates placed exactly on symmetric sites: EST against EquiformerV2.

Relaxations end at symmetric sites, where the local frame (``est.grid_frame: local``) is ill
defined and blends towards the fixed grid (``nn/local_frame.py``). This trains the demo models
with fairchem (EST with the default settings, the CPU demo's EST on the fixed 36-point grid,
plain EquiformerV2: the same data, schedule and size), then relaxes CO and OH placed on the
top, bridge, fcc and hcp sites of ideal Cu(111) and Pt(111) 2x2x3 slabs (the demo's slabs,
CO and OH are its out-of-distribution adsorbates) with ASE's BFGS through fairchem's
OCPCalculator, and reports per model: steps to fmax 0.05 eV/A, whether it converged, how
often the energy rose (an oscillating relaxation), and how far the binding atom left its
site sideways (an exactly symmetric, continuous model keeps it on a top or hollow site). EMT,
the data's labeller, is the reference.

    python benchmarks/symmetric_site_relaxations.py    # ~15 min on 2 CPU cores, resumable

Work files (demo data, the three training runs) go under ``--work``; a model whose checkpoint
is there is not retrained, and each finished relaxation is written to ``--out`` at once, so a
rerun with ``--resume`` continues where an interrupted one stopped.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

from common import REPO, est_fairchem_command, run_logged
from est_fairchem.testing.result_files import add_overwrite_option, refuse_existing, write_json
from est_fairchem.tools.fairchem_runs import run_fairchem

MODELS = {
    "est_default": "configs/oc20/s2ef/demo/est_default_demo.yml",
    "est_fixed_grid_36": "configs/oc20/s2ef/demo/est_eqv2_demo.yml",
    "equiformer_v2": "configs/oc20/s2ef/demo/eqv2_demo.yml",
}
METALS = ("Cu", "Pt")
ADSORBATES = ("CO", "OH")
SITES = ("ontop", "bridge", "fcc", "hcp")
FMAX = 0.05
MAX_STEPS = 300


def demo_data(work: Path) -> Path:
    """The demo's S2EF LMDBs (made once under ``work``)."""
    data = work / "data/s2ef"
    if not (data / "metadata.json").exists():
        run_logged([est_fairchem_command(), "make-demo-data", "--task", "s2ef", "--out", str(data)],
                   work / "data.log")
    return data


def trained_checkpoint(name: str, config: str, data: Path, work: Path) -> Path:
    """best_checkpoint.pt of fairchem's training run of ``config`` on ``data`` (once)."""
    run_dir = work / name
    found = sorted(run_dir.glob("checkpoints/*/best_checkpoint.pt"))
    if found:
        return found[-1]
    run_dir.mkdir(parents=True, exist_ok=True)
    run_fairchem(["--mode", "train", "--config-yml", str(REPO / config), "--cpu",
                  "--run-dir", str(run_dir), "--identifier", name,
                  f"--dataset.train.src={data / 'train'}", f"--dataset.val.src={data / 'val'}"],
                 run_dir / "train.log")
    return sorted(run_dir.glob("checkpoints/*/best_checkpoint.pt"))[-1]


def ideal_slab(metal: str, adsorbate: str, site: str):
    """The demo's 2x2x3 slab, unrattled, with the adsorbate 2.0 A above ``site``."""
    from est_fairchem.data.demo_s2ef import make_slab_with_adsorbate

    return make_slab_with_adsorbate(metal, adsorbate, np.random.default_rng(0), site=site,
                                    height=2.0)


def relax(atoms, calculator) -> dict:
    """BFGS to fmax 0.05 eV/A (at most 300 steps): steps, convergence, energy rises, the
    binding atom's sideways drift."""
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.calc = calculator
    binding = int(np.flatnonzero(atoms.get_tags() == 2)[0])
    start = atoms.positions[binding, :2].copy()
    energies, fmaxes = [], []

    def record():
        forces = atoms.get_forces()
        free = atoms.get_tags() != 0
        energies.append(float(atoms.get_potential_energy()))
        fmaxes.append(float(np.linalg.norm(forces[free], axis=1).max()))

    optimizer = BFGS(atoms, logfile=None)
    optimizer.attach(record)
    converged = bool(optimizer.run(fmax=FMAX, steps=MAX_STEPS))
    rises = int(np.sum(np.diff(energies) > 1e-4))
    return {
        "steps": int(optimizer.get_number_of_steps()),
        "converged": converged,
        "energy_rises": rises,
        "final_fmax": fmaxes[-1],
        "sideways_drift_A": float(np.linalg.norm(atoms.positions[binding, :2] - start)),
        "energy_change_eV": energies[-1] - energies[0],
    }


def summary(relaxations: dict[str, dict]) -> dict[str, dict]:
    """Per model: mean and max steps, converged count, relaxations whose energy rose more than
    twice, the largest sideways drift from top and hollow sites."""
    out: dict[str, dict] = {}
    for model in {key.split("/")[0] for key in relaxations}:
        runs = {k: v for k, v in relaxations.items() if k.startswith(model + "/")}
        steps = [r["steps"] for r in runs.values()]
        on_axis = [r["sideways_drift_A"] for k, r in runs.items() if not k.endswith("/bridge")]
        out[model] = {
            "relaxations": len(runs),
            "converged": sum(r["converged"] for r in runs.values()),
            "mean_steps": float(np.mean(steps)),
            "max_steps": int(max(steps)),
            "oscillating": sum(r["energy_rises"] > 2 or not r["converged"] for r in runs.values()),
            "max_drift_from_top_or_hollow_A": float(max(on_axis)) if on_axis else None,
        }
    return dict(sorted(out.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks/results/symmetric_site_relaxations_cpu.json")
    parser.add_argument("--work", type=Path, default=REPO / "runs/bench_symmetric_sites")
    parser.add_argument("--resume", action="store_true",
                        help="keep the relaxations already in --out and run the rest")
    add_overwrite_option(parser)
    args = parser.parse_args()
    if not args.resume:
        refuse_existing(parser, [args.out], args.overwrite)
    from ase.calculators.emt import EMT
    from fairchem.core.common.relaxation.ase_utils import OCPCalculator

    import est_fairchem  # noqa: F401  (the plugin's classes, registered for fairchem)

    report = json.loads(args.out.read_text()) if args.resume and args.out.exists() else {}
    relaxations = report.get("relaxations", {})
    report.update({
        "command": "python " + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "machine": platform.processor() or platform.machine(),
        "protocol": {"fmax_eV_per_A": FMAX, "max_steps": MAX_STEPS, "optimizer": "ase BFGS",
                     "slab": "ideal 2x2x3 fcc(111), 2 fixed layers, adsorbate 2.0 A above the site",
                     "models": MODELS, "training": "configs/oc20/s2ef/demo/optim.yml on the demo data"},
    })
    args.work.mkdir(parents=True, exist_ok=True)
    data = demo_data(args.work)
    calculators = {"emt": EMT}
    for name, config in MODELS.items():
        checkpoint = trained_checkpoint(name, config, data, args.work)
        # (the checkpoint records fairchem's task name, not the trainer that wrote it)
        calculators[name] = lambda path=checkpoint: OCPCalculator(
            checkpoint_path=str(path), trainer="equiformerv2_forces", cpu=True, seed=0)
    for name, make in calculators.items():
        calculator = make()
        for metal in METALS:
            for adsorbate in ADSORBATES:
                for site in SITES:
                    key = f"{name}/{metal}/{adsorbate}/{site}"
                    if key in relaxations:
                        continue
                    relaxations[key] = relax(ideal_slab(metal, adsorbate, site), calculator)
                    print(key, relaxations[key], flush=True)
                    report["relaxations"] = dict(sorted(relaxations.items()))
                    report["summary"] = summary(relaxations)
                    write_json(args.out, report)
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
