"""What the benchmarks share: the repository root, the EST / plain config pairs, made training
batches, seeded models, the training loss, the command line of a run and logged subprocesses.

The scripts of this folder import it as a sibling module (``python benchmarks/X.py`` puts this
folder first on ``sys.path``; the tests get the folder from pytest's ``pythonpath`` setting).
Everything else they share comes from the package (``est_fairchem.testing``, ``.tools``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

# (EST config, plain config) of each size, relative to the repository.
CONFIGS = {
    "small": ("configs/oc20/s2ef/demo/est_eqv2_demo.yml", "configs/oc20/s2ef/demo/eqv2_demo.yml"),
    "paper": ("configs/oc20/s2ef/all/est_eqv2_N@8_L@4_M@2_45M.yml",
              "configs/oc20/s2ef/all/eqv2_N@8_L@4_M@2_31M.yml"),
    "default": ("configs/oc20/s2ef/all/est_eqv2_N@8_L@4_M@2_31M.yml",
                "configs/oc20/s2ef/all/eqv2_N@8_L@4_M@2_31M.yml"),
    "is2re-small": ("configs/oc20/is2re/demo/est_equiformer_demo.yml",
                    "configs/oc20/is2re/demo/equiformer_demo.yml"),
    "is2re-paper": ("configs/oc20/is2re/all/est_equiformer_L@1_6blocks_32M.yml",
                    "configs/oc20/is2re/all/equiformer_L@1_6blocks.yml"),
}


def make_batches(num_batches: int, batch_size: int, slab_size: tuple[int, int, int], seed: int):
    """Collated fairchem batches of EMT-labelled slab + adsorbate systems (graphs on the fly)."""
    from ase.calculators.emt import EMT

    from est_fairchem.data.demo_s2ef import TRAIN_ADSORBATES, TRAIN_METALS, make_slab_with_adsorbate

    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(num_batches):
        systems = []
        for _ in range(batch_size):
            atoms = make_slab_with_adsorbate(
                TRAIN_METALS[rng.integers(len(TRAIN_METALS))],
                TRAIN_ADSORBATES[rng.integers(len(TRAIN_ADSORBATES))], rng, slab_size)
            atoms.calc = EMT()
            systems.append(atoms)
        batches.append(collate_labelled(systems))
    return batches


def collate_labelled(systems: list):
    """One fairchem batch (graphs built on the fly) of ASE atoms with a calculator attached:
    energies, forces, fixed flags and cells, as fairchem's S2EF LMDBs hold them."""
    from fairchem.core.datasets import data_list_collater
    from fairchem.core.preprocessing import AtomsToGraphs

    a2g = AtomsToGraphs(r_energy=True, r_forces=True, r_fixed=True, r_pbc=True, r_edges=False)
    return data_list_collater([a2g.convert(atoms) for atoms in systems], otf_graph=True)


def seeded_model(config: dict, seed: int, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The model of the config dict ``config`` with weights drawn from ``seed``, train mode."""
    from est_fairchem.tools.model_from_config import build_model

    torch.manual_seed(seed)
    return build_model(config).to(device).train()


def build(config_path: str, device: torch.device, seed: int,
          est_options: dict | None = None) -> torch.nn.Module:
    """The model of the config file ``config_path`` (relative to the repository) in training
    mode; ``est_options`` override its ``est:`` keys."""
    from est_fairchem.tools.model_from_config import load_config

    config = load_config(REPO / config_path)
    if est_options:
        config["model"]["backbone"]["est"].update(est_options)
    return seeded_model(config, seed, device)


def autocast(device: torch.device, enabled: bool):
    """Mixed precision as fairchem's ``amp: True`` uses it: float16 on CUDA (bfloat16 on CPU)."""
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=enabled)


def prediction(out: dict, name: str) -> torch.Tensor:
    """A model's output ``name``: hydra models nest it under their head's name."""
    value = out[name]
    return value[name] if isinstance(value, dict) else value


def loss_of(model: torch.nn.Module, batch, amp: bool = False) -> torch.Tensor:
    """Energy MAE plus the mean force-error norm (where the model predicts forces)."""
    with autocast(batch.pos.device, amp):
        out = model(batch)
    energy = prediction(out, "energy").reshape(-1)
    loss = (energy - batch.energy).abs().mean()
    if "forces" in out:
        loss = loss + (prediction(out, "forces") - batch.forces).norm(dim=-1).mean()
    return loss


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (time the kernels, not their launches)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def command_line(args: argparse.Namespace, script: str = "benchmarks/throughput.py") -> str:
    """The command that reproduces this run of ``script`` (``--out`` left out)."""
    words = ["python", script]
    for key, value in vars(args).items():
        flag = "--" + key.replace("_", "-")
        if key == "est_option":
            words += [f"{flag} {pair}" for pair in value]
        elif key != "out" and value is not None and value is not False:
            words.append(flag if value is True else f"{flag} {value}")
    return " ".join(words)


def est_fairchem_command() -> str:
    """The ``est-fairchem`` console script of this environment."""
    return str(Path(sys.executable).with_name("est-fairchem"))


def run_logged(command: list[str], log: Path) -> None:
    """Run ``command`` in the repository with its output in ``log``; exit with a message naming
    the log on failure (fairchem itself: ``est_fairchem.tools.fairchem_runs.run_fairchem``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as stream:
        done = subprocess.run(command, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")
