"""Graph statistics of a config's data: ``avg_num_nodes`` and ``avg_degree`` as the model sees them.

Two numbers normalise sums in every backbone here (and in fairchem's EquiformerV2):

- ``avg_num_nodes``: atoms per structure, averaged over the structures; the energy (or
  property) head divides its sum over atoms by it (or by its square root).
- ``avg_degree``: neighbours per atom, i.e. edges / atoms over the whole split, with the
  backbone's own ``max_radius`` and ``max_neighbors`` (and periodic images when ``use_pbc``);
  message sums and the edge-degree embedding divide by it (or by its square root).

Numbers taken from another dataset scale every message and the output by a constant factor
the optimiser has to undo (real QM9 at 5 A has 15.58 neighbours per atom; a config written
for made molecules said 6.5). :func:`graph_statistics` counts them on the config's own
training split, with the graph the model builds: fairchem's ``radius_graph_pbc`` for
periodic structures, all neighbours within the cutoff up to ``max_neighbors`` for molecules.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from est_fairchem.errors import InputError

STATISTICS = ("avg_num_nodes", "avg_degree")


@dataclass(frozen=True)
class GraphOptions:
    """The backbone's neighbour search (fairchem's option names)."""

    max_radius: float
    max_neighbors: int
    use_pbc: bool
    enforce_max_neighbors_strictly: bool = True


@dataclass
class GraphStatistics:
    """What :func:`graph_statistics` measured on ``structures`` of ``total`` structures."""

    avg_num_nodes: float
    avg_degree: float
    structures: int
    total: int
    min_atoms: int
    max_atoms: int
    capped_fraction: float  # atoms whose neighbours were cut at max_neighbors
    graph: GraphOptions
    # where the config states either number: dotted key -> value
    configured: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def graph_options(model: dict[str, Any]) -> GraphOptions:
    """The neighbour search of a config's ``model:`` section (hydra or not)."""
    backbone = model.get("backbone", model)
    while "max_radius" not in backbone and "cutoff" not in backbone and \
            isinstance(backbone.get("model"), dict):  # a wrapper (RenamedOutputs)
        backbone = backbone["model"]
    radius = backbone.get("max_radius", backbone.get("cutoff"))
    if radius is None:
        raise InputError("model.backbone has no max_radius (or cutoff): the graph statistics "
                         "need the backbone's cutoff")
    return GraphOptions(
        max_radius=float(radius),
        max_neighbors=int(backbone.get("max_neighbors", 500)),
        use_pbc=bool(backbone.get("use_pbc", True)),
        enforce_max_neighbors_strictly=bool(backbone.get("enforce_max_neighbors_strictly",
                                                         True)),
    )


def configured_values(section: Any, prefix: str = "model") -> dict[str, float]:
    """Every ``avg_num_nodes`` / ``avg_degree`` a config's ``model:`` section sets, by dotted
    key (``model.backbone.avg_degree``, ``model.heads.homo.avg_num_nodes``, ...)."""
    found: dict[str, float] = {}
    if isinstance(section, dict):
        for key, value in section.items():
            path = f"{prefix}.{key}"
            if key in STATISTICS and isinstance(value, (int, float)):
                found[path] = float(value)
            else:
                found.update(configured_values(value, path))
    return found


def _split_config(config: dict[str, Any], split: str, path: Path) -> dict[str, Any]:
    datasets = config.get("dataset")
    if not isinstance(datasets, dict) or split not in datasets:
        raise InputError(f"{path}: expected a 'dataset:' section with a '{split}:' split")
    part = dict(datasets[split])
    if split != "train":  # fairchem: the other splits inherit the train split's format
        part = {"format": datasets["train"].get("format", "lmdb"), **part}
    return part


def _degrees(batch, options: GraphOptions) -> torch.Tensor:
    """Neighbours of every atom of a fairchem batch, [N] (the model's own neighbour search)."""
    from est_fairchem.models.common.graph import molecular_radius_graph, periodic_edges

    if options.use_pbc:
        edge_index, _ = periodic_edges(batch, options.max_radius, options.max_neighbors,
                                       options.enforce_max_neighbors_strictly, otf_graph=True)
    else:
        edge_index = molecular_radius_graph(batch.pos, batch.batch, options.max_radius,
                                            options.max_neighbors)
    return torch.bincount(edge_index[1], minlength=batch.pos.shape[0])


def _batches(dataset, indices: np.ndarray, size: int) -> Iterator:
    from fairchem.core.datasets import data_list_collater

    for start in range(0, len(indices), size):
        yield data_list_collater([dataset[int(i)] for i in indices[start:start + size]],
                                 otf_graph=True)


def graph_statistics(config_path: str | Path, split: str = "train",
                     max_structures: int | None = 20_000, seed: int = 0,
                     batch_size: int = 32, overrides: dict[str, Any] | None = None,
                     ) -> GraphStatistics:
    """Count ``avg_num_nodes`` and ``avg_degree`` on ``split`` of the config at ``config_path``.

    Args:
        config_path: a fairchem YAML config (``includes:`` resolved as fairchem does).
        split: the dataset split to read (``train``: the numbers a model should be built with).
        max_structures: read a seeded random sample of this many structures when the split is
            larger (None: all). The sample's mean has a relative standard error of about
            ``cv / sqrt(n)``: below 0.3 % for 20,000 QM9 molecules.
        seed: seed of that sample.
        batch_size: structures per neighbour search.
        overrides: nested keys that replace the config's (fairchem's ``--a.b=c`` overrides,
            see :func:`~est_fairchem.tools.model_from_config.dotted_overrides`).
    """
    from fairchem.core.common.utils import setup_imports
    from fairchem.core.datasets.base_dataset import create_dataset

    from est_fairchem.tools.model_from_config import load_config

    path = Path(config_path)
    config = load_config(path)
    if overrides:
        from fairchem.core.common.utils import merge_dicts

        config, _ = merge_dicts(config, overrides)
    options = graph_options(config["model"])
    setup_imports()
    dataset = create_dataset(_split_config(config, split, path), split)
    total = len(dataset)
    if total == 0:
        raise InputError(f"{path}: the {split} split has no structures")
    indices = np.arange(total)
    if max_structures is not None and total > max_structures:
        indices = np.sort(np.random.default_rng(seed).choice(total, max_structures,
                                                            replace=False))
    atoms_per_structure, edges, capped = [], 0, 0
    for batch in _batches(dataset, indices, batch_size):
        degree = _degrees(batch, options)
        atoms_per_structure += batch.natoms.tolist()
        edges += int(degree.sum())
        capped += int((degree >= options.max_neighbors).sum())
    atoms = sum(atoms_per_structure)
    return GraphStatistics(
        avg_num_nodes=atoms / len(atoms_per_structure), avg_degree=edges / atoms,
        structures=len(indices), total=total, min_atoms=min(atoms_per_structure),
        max_atoms=max(atoms_per_structure), capped_fraction=capped / atoms, graph=options,
        configured=configured_values(config["model"]))


def mismatches(stats: GraphStatistics, tolerance: float = 0.05) -> dict[str, tuple[float, float]]:
    """Configured values more than ``tolerance`` (relative) away from the measured ones:
    dotted key -> (configured, measured)."""
    out = {}
    for key, value in stats.configured.items():
        measured = getattr(stats, key.rsplit(".", 1)[1])
        if not math.isclose(value, measured, rel_tol=tolerance):
            out[key] = (value, measured)
    return out
