"""Rotation check of any fairchem model config: energies invariant, forces (when the model
predicts them: S2EF models, not IS2RE ones) rotating with it.

The model is built from its config as fairchem builds it (EST or plain fairchem models alike),
optionally loaded from a fairchem checkpoint, cast to float64 and put in eval mode. It is run on
a structure and on random rotations of it (cell rotated too), with full-precision graphs from
ASE's neighbour list (every neighbour within the model's cutoff, so no neighbour truncation
enters the measurement).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch

from est_fairchem.testing.equivariance import relative_error
from est_fairchem.testing.structures import graph_batch, made_slab, rotated
from est_fairchem.tools.model_from_config import build_model, load_config


def _output(out: dict, key: str) -> torch.Tensor | None:
    if key not in out:
        return None
    value = out[key]
    if isinstance(value, dict):  # hydra heads return {name: tensor}
        value = value[key]
    return value.detach()


def load_checkpoint_weights(model: torch.nn.Module, checkpoint: Path) -> None:
    """Load a fairchem checkpoint's ``state_dict`` (DDP ``module.`` prefixes removed)."""
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if "state_dict" not in state:
        raise ValueError(f"{checkpoint}: expected a fairchem checkpoint with a 'state_dict'")
    weights = {k.removeprefix("module."): v for k, v in state["state_dict"].items()}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if "SO3" not in k and "mapping" not in k]
    if missing or unexpected:
        raise ValueError(
            f"{checkpoint} does not fit the config's model: missing {missing[:10]}, "
            f"unexpected {unexpected[:10]}"
        )


def read_structure(path: Path):
    """The first structure of an ASE-readable file, with errors that name the file."""
    from ase.io import read

    if not Path(path).is_file():
        raise FileNotFoundError(f"structure file not found: {path}")
    try:
        atoms = read(path)
    except Exception as error:  # ASE raises many types for unreadable files
        raise ValueError(f"{path}: ASE cannot read a structure from it ({error})") from error
    if len(atoms) == 0:
        raise ValueError(f"{path}: the structure has no atoms")
    return atoms


def check_equivariance(
    config_path: Path, checkpoint: Path | None = None, structure: Path | None = None,
    rotations: int = 5, seed: int = 0, progress: Callable[[str], None] | None = None,
) -> dict:
    """Relative energy and force errors under ``rotations`` random rotations (max and mean).

    Runs with torch's default dtype set to float64 (fairchem's EquiformerV2 creates some
    tensors in the default dtype), restored afterwards. ``progress``, if given, receives one
    line naming the structure and its edge count before the model runs (memory and time grow
    with the edges: a 12 A cutoff in a metal gives hundreds per atom).
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return _check(config_path, checkpoint, structure, rotations, seed, progress)
    finally:
        torch.set_default_dtype(previous)


def _check(
    config_path: Path, checkpoint: Path | None, structure: Path | None, rotations: int, seed: int,
    progress: Callable[[str], None] | None,
) -> dict:
    from e3nn import o3

    atoms = read_structure(structure) if structure is not None else made_slab()
    config = copy.deepcopy(load_config(config_path))
    config["model"]["otf_graph"] = False
    backbone = config["model"].get("backbone", config["model"])
    backbone["otf_graph"] = False
    radius = float(backbone.get("max_radius", backbone.get("cutoff", 6.0)))
    torch.manual_seed(seed)
    model = build_model(config)
    if checkpoint is not None:
        load_checkpoint_weights(model, checkpoint)
    model = model.double().eval()

    def predict(structure_atoms):
        out = model(graph_batch([structure_atoms], radius))
        return _output(out, "energy").reshape(-1), _output(out, "forces")

    edges = int(graph_batch([atoms], radius).edge_index.shape[1])
    name = str(structure) if structure else "made Cu(111) + CO slab"
    if progress is not None:
        progress(f"structure:  {name} ({len(atoms)} atoms, {edges} edges: every neighbour "
                 f"within {radius:g} A), float64, eval mode")
    energy, forces = predict(atoms)
    energy_errors, force_errors, energy_shifts, force_shifts = [], [], [], []
    for _ in range(rotations):
        rotation = o3.rand_matrix(dtype=torch.float64)  # seeded above, after the weights
        energy_r, forces_r = predict(rotated(atoms, rotation.numpy()))
        energy_errors.append(relative_error(energy_r, energy))
        energy_shifts.append(float((energy_r - energy).abs().max()))
        if forces is not None:
            expected = forces @ rotation.T
            force_errors.append(relative_error(forces_r, expected))
            force_shifts.append(float((forces_r - expected).abs().max()))
    force_scale = float(forces.abs().mean()) if forces is not None else None
    return {
        "config": str(config_path),
        "checkpoint": str(checkpoint) if checkpoint else None,
        "structure": name,
        "atoms": len(atoms),
        "edges": edges,
        "rotations": rotations,
        "energy": float(energy.sum()),
        "energy_error_max": max(energy_errors),
        "energy_error_mean": sum(energy_errors) / rotations,
        "energy_abs_error_max": max(energy_shifts),
        "force_error_max": max(force_errors) if force_errors else None,
        "force_error_mean": sum(force_errors) / rotations if force_errors else None,
        "force_abs_error_max": max(force_shifts) if force_shifts else None,
        "force_mean_abs": force_scale,
        # True when the forces are no larger than their change under rotation, as on a perfect
        # crystal, whose forces vanish by symmetry: the relative error is then meaningless.
        "forces_at_noise_level": force_scale is not None and force_scale <= max(force_shifts),
    }

