"""Rotation check of any fairchem model config: every output its ``outputs`` section declares,
invariants (energies, QM9 targets) unchanged and vectors (``irrep_dim: 1``: forces) rotating
with the structure.

The model is built from its config as fairchem builds it (EST or plain fairchem models alike),
optionally loaded from a fairchem checkpoint (with the weights fairchem predicts with:
:mod:`est_fairchem.tools.checkpoint_loading`), cast to float64 and put in eval mode. It is run
on a structure and on random rotations of it (cell rotated too), with full-precision graphs
from ASE's neighbour list (every neighbour within the model's cutoff, so no neighbour
truncation enters the measurement). Outputs are compared in physical units, denormalised and
with element references added as ``fairchem --mode predict`` does
(:mod:`est_fairchem.tools.output_units`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch

from est_fairchem.errors import InputError, require_file
from est_fairchem.models.common.input_checks import non_finite
from est_fairchem.testing.equivariance import rotation_changes
from est_fairchem.testing.structures import graph_batch, made_molecule, made_slab
from est_fairchem.tools.checkpoint_loading import load_prediction_weights
from est_fairchem.tools.model_from_config import build_model, load_config
from est_fairchem.tools.output_units import output_transforms


def _output(out: dict, key: str) -> torch.Tensor | None:
    if key not in out:
        return None
    value = out[key]
    if isinstance(value, dict):  # hydra heads return {name: tensor}
        value = value[key]
    return value.detach()


def check_finite_atoms(atoms, name: str) -> None:
    """Raise ``InputError`` naming ``name`` if the positions or the cell hold NaN or inf."""
    for what, values in (("positions", atoms.positions), ("cell", atoms.cell.array)):
        kind = non_finite(torch.as_tensor(values))
        if kind:
            raise InputError(f"{name}: its {what} hold {kind}; expected finite numbers")


def read_structure(path: Path):
    """The first structure of an ASE-readable file (a database's first row, a trajectory's
    first frame), with errors that name the file (also for NaN or infinite positions or
    cell)."""
    from ase.io import read

    require_file(path, "structure file")
    try:
        atoms = read(path, index=0)  # ASE's default is the last one
    except Exception as error:  # ASE raises many types for unreadable files
        raise InputError(f"{path}: ASE cannot read a structure from it ({error})") from error
    if len(atoms) == 0:
        raise InputError(f"{path}: the structure has no atoms")
    check_finite_atoms(atoms, str(path))
    return atoms


def check_equivariance(
    config_path: Path, checkpoint: Path | None = None, structure: Path | None = None,
    rotations: int = 5, seed: int = 0, progress: Callable[[str], None] | None = None,
) -> dict:
    """Relative and absolute errors of each declared output under ``rotations`` random
    rotations (max and mean; ``result["outputs"][name]``), in the physical units
    ``fairchem --mode predict`` writes (``denormalized_with`` names the normalizer and element
    references applied). Without ``structure``: a made slab for periodic models, a made
    molecule for molecular ones (``use_pbc: False``).

    Runs with torch's default dtype set to float64 (fairchem's EquiformerV2 creates some
    tensors in the default dtype), restored afterwards. ``progress``, if given, receives one
    line naming the structure and its edge count before the model runs (memory and time grow
    with the edges: a 12 A cutoff in a metal gives hundreds per atom).
    """
    if rotations < 1:
        raise InputError(f"rotations={rotations}: expected at least 1")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return _check(config_path, checkpoint, structure, rotations, seed, progress)
    finally:
        torch.set_default_dtype(previous)


def declared_outputs(config: dict) -> tuple[dict[str, int], dict[str, str]]:
    """The config's ``outputs`` to check, as ``{name: degree}`` (0: invariant, the default;
    1: a vector per atom or system, ``irrep_dim: 1``), and ``{name: why not checked}`` for the
    others (decomposed rank-2 outputs such as stress). Without an ``outputs`` section:
    energy and forces."""
    outputs = config.get("outputs")
    if not outputs:
        return {"energy": 0, "forces": 1}, {}
    checked, unchecked = {}, {}
    for name, spec in outputs.items():
        spec = spec or {}
        degree = spec.get("irrep_dim", 0)
        if "decomposition" in spec or degree not in (0, 1):
            unchecked[name] = "rank-2 or decomposed output: not compared"
        else:
            checked[name] = int(degree)
    return checked, unchecked


def _output_level(config: dict, name: str) -> str:
    """``atom`` or ``system``: the config's ``outputs.<name>.level`` (default: forces per
    atom, everything else per system)."""
    spec = (config.get("outputs") or {}).get(name) or {}
    return spec.get("level", "atom" if name == "forces" else "system")


def _element_check(atoms, backbone: dict, name: str, config_path: Path) -> None:
    """Refuse atoms the model's element table cannot embed (e.g. a slab for a QM9 model)."""
    table = backbone.get("max_num_elements")
    numbers = atoms.get_atomic_numbers()
    if table is not None and numbers.max() >= int(table):
        outside = sorted({s for s, z in zip(atoms.get_chemical_symbols(), numbers) if z >= table})
        raise InputError(
            f"{name}: elements {', '.join(outside)} are outside the model's element table "
            f"(max_num_elements: {table} in {config_path}, atomic numbers below {table}); "
            "check it on a structure of the elements it was made for (--structure)")


def model_cutoff(model: torch.nn.Module, config_path: Path) -> float:
    """The cutoff (Angstrom) of the built model's own graph: its backbone's ``cutoff``
    (fairchem's models and this package's backbones set it from ``max_radius`` or ``cutoff``,
    or from their default where the config sets none; docs/design.md §14.2)."""
    cutoff = getattr(getattr(model, "backbone", model), "cutoff", None)
    if not isinstance(cutoff, (int, float)) or cutoff <= 0:
        raise InputError(f"{config_path}: the model it builds has no positive `cutoff` "
                         f"(got {cutoff!r}); check-equivariance builds its graph with the "
                         "model's own cutoff")
    return float(cutoff)


def _check(
    config_path: Path, checkpoint: Path | None, structure: Path | None, rotations: int, seed: int,
    progress: Callable[[str], None] | None,
) -> dict:

    config = copy.deepcopy(load_config(config_path))
    config["model"]["otf_graph"] = False
    backbone = config["model"].get("backbone", config["model"])
    backbone["otf_graph"] = False
    periodic = backbone.get("use_pbc", True)
    if structure is not None:
        atoms, name = read_structure(structure), str(structure)
    elif periodic:
        atoms, name = made_slab(), "made Cu(111) + CO slab"
    else:
        atoms, name = made_molecule(), "made ethanol molecule"
    _element_check(atoms, backbone, name, config_path)
    checked, unchecked = declared_outputs(config)
    torch.manual_seed(seed)
    model = build_model(config)
    radius = model_cutoff(model, config_path)
    stored = None
    if checkpoint is not None:
        stored = load_prediction_weights(model, checkpoint, config, config_path)
    model = model.double().eval()
    transforms = output_transforms(config, stored)

    def predict(batch) -> dict[str, torch.Tensor | None]:
        out = model(batch)
        values = {}
        for key in checked:
            value = _output(out, key)
            if value is not None:  # shaped per atom or per system, as fairchem does
                per_atom = _output_level(config, key) == "atom"
                rows = int(batch.natoms.sum()) if per_atom else len(batch.natoms)
                value = transforms.physical(key, value.view(rows, -1), batch)
            values[key] = value
        return values

    batch = graph_batch([atoms], radius)
    edges = int(batch.edge_index.shape[1])
    if progress is not None:
        progress(f"structure:  {name} ({len(atoms)} atoms, {edges} edges: every neighbour "
                 f"within {radius:g} A), float64, eval mode")
    reference = predict(batch)
    for key in [k for k, v in reference.items() if v is None]:
        del checked[key]
        unchecked[key] = "not predicted by this model"
    if not checked:
        raise InputError(f"{config_path}: the model predicts none of the outputs to check "
                         f"({', '.join(unchecked)})")

    def predict_checked(structure) -> dict[str, torch.Tensor]:
        values = predict(graph_batch([structure], radius))
        return {key: values[key] for key in checked}

    changes = rotation_changes(predict_checked, atoms,  # rotations seeded above, after the weights
                               vectors=tuple(k for k, d in checked.items() if d == 1),
                               rotations=rotations)
    relative = {key: [r for r, _ in values] for key, values in changes.items()}
    absolute = {key: [a for _, a in values] for key, values in changes.items()}
    outputs = {}
    for key, degree in checked.items():
        scale = float(reference[key].abs().mean())
        outputs[key] = {
            "degree": degree,
            "value": float(reference[key].sum()) if degree == 0 else None,
            "error_max": max(relative[key]),
            "error_mean": sum(relative[key]) / rotations,
            "abs_error_max": max(absolute[key]),
            "mean_abs": scale,
            # True when the output is no larger than its change under rotation, as forces on
            # a perfect crystal, which vanish by symmetry: the relative error is meaningless.
            "at_noise_level": scale <= max(absolute[key]),
            "denormalized_with": transforms.applied(key),  # as fairchem predicts
        }
    return {
        "config": str(config_path),
        "checkpoint": str(checkpoint) if checkpoint else None,
        "structure": name,
        "atoms": len(atoms),
        "edges": edges,
        "rotations": rotations,
        "outputs": outputs,
        "unchecked": unchecked,
    }
