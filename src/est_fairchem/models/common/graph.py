"""Radius graphs of molecules without torch_cluster (fairchem's non-periodic path needs it), and the
graph options of the backbones built here."""

from __future__ import annotations

import torch

from est_fairchem.models.common.input_checks import check_batch_periodicity, check_graph_has_edges


def molecular_radius_graph(
    pos: torch.Tensor, batch: torch.Tensor, cutoff: float, max_neighbors: int
) -> torch.Tensor:
    """Edges between atoms of the same system closer than ``cutoff``, no self loops.

    Keeps the ``max_neighbors`` nearest neighbours of each centre. Dense per batch: O(N^2)
    memory in the batch's atom count, fine for molecules (QM9: 128 x 18 atoms).

    Args:
        pos: [N, 3] positions; batch: [N] system index.
    Returns:
        [2, E] ``edge_index`` in fairchem's convention ``[neighbour, centre]``.
    """
    distance = torch.cdist(pos.detach(), pos.detach())
    same = batch[:, None] == batch[None, :]
    eye = torch.eye(len(pos), dtype=torch.bool, device=pos.device)
    within = same & ~eye & (distance < cutoff)
    distance = distance.masked_fill(~within, float("inf"))
    k = min(max_neighbors, max(len(pos) - 1, 1))
    nearest, neighbour = distance.topk(k, dim=1, largest=False)  # [N, k] per centre
    centre = torch.arange(len(pos), device=pos.device)[:, None].expand_as(neighbour)
    keep = torch.isfinite(nearest)
    return torch.stack([neighbour[keep], centre[keep]])


def periodic_edges(
    data, cutoff: float, max_neighbors: int, enforce_max_neighbors_strictly: bool, otf_graph: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges of periodic systems and their vectors in the positions' own precision.

    The neighbour search is fairchem's (``radius_graph_pbc``, or the graph stored with the
    data when ``otf_graph`` is false); the vectors ``r_ij = pos_j - pos_i + offset_ij @ cell``
    are computed here from the integer cell offsets, because fairchem's ``get_pbc_distances``
    casts the offsets to float32 (edge vectors off by ~1e-7 A even for float64 positions).

    Returns:
        ``edge_index`` [2, E] (``[neighbour, centre]``) and ``edge_vec`` [E, 3], zero-length
        edges (an atom and itself) removed.
    """
    if otf_graph:
        from fairchem.core.common.utils import radius_graph_pbc

        edge_index, cell_offsets, _ = radius_graph_pbc(
            data, cutoff, max_neighbors, enforce_max_neighbors_strictly
        )
    else:
        edge_index, cell_offsets = data.edge_index, data.cell_offsets
    pos = data.pos
    cell = data.cell.to(pos.dtype)[data.batch[edge_index[1]]]  # [E, 3, 3]
    offsets = torch.einsum("ei,eij->ej", cell_offsets.to(pos.dtype), cell)
    edge_vec = pos[edge_index[0]] - pos[edge_index[1]] + offsets
    keep = edge_vec.norm(dim=1) > 0
    return edge_index[:, keep], edge_vec[keep]


def graph_edges(
    data, cutoff: float, max_neighbors: int, use_pbc: bool, otf_graph: bool,
    enforce_max_neighbors_strictly: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``edge_index`` [2, E] = [neighbour j, centre i] and ``r_ij = pos_j - pos_i`` [E, 3]
    (plus the cell offset for periodic systems) in the positions' precision: fairchem's
    neighbour search for periodic systems (:func:`periodic_edges`), a dense radius graph for
    molecules (:func:`molecular_radius_graph`) unless the batch brings its own edges."""
    if use_pbc:
        edge_index, edge_vec = periodic_edges(data, cutoff, max_neighbors,
                                              enforce_max_neighbors_strictly, otf_graph)
    else:
        if otf_graph or getattr(data, "edge_index", None) is None:
            edge_index = molecular_radius_graph(data.pos, data.batch, cutoff, max_neighbors)
        else:
            edge_index = data.edge_index
        edge_vec = data.pos[edge_index[0]] - data.pos[edge_index[1]]
    check_graph_has_edges(edge_index, data, cutoff)
    return edge_index, edge_vec


class RadiusGraphBackbone:
    """The graph of the Equiformer and pure EST backbones: fairchem's graph options as
    attributes (``cutoff``, ``max_neighbors``, ``use_pbc``, ``otf_graph``,
    ``enforce_max_neighbors_strictly``) and the checked inputs of a forward pass."""

    def set_graph_options(self, max_radius: float, max_neighbors: int, use_pbc: bool,
                          otf_graph: bool, enforce_max_neighbors_strictly: bool) -> None:
        self.cutoff = max_radius
        self.max_neighbors = max_neighbors
        self.use_pbc = use_pbc
        self.otf_graph = otf_graph
        self.enforce_max_neighbors_strictly = enforce_max_neighbors_strictly

    def edges(self, data) -> tuple[torch.Tensor, torch.Tensor]:
        """``edge_index`` [2, E] and edge vectors [E, 3]: see :func:`graph_edges`."""
        return graph_edges(data, self.cutoff, self.max_neighbors, self.use_pbc, self.otf_graph,
                           self.enforce_max_neighbors_strictly)

    def graph_inputs(self, data) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(edge sources [E], edge destinations [E], edge vectors [E, 3], atomic numbers [N])
        of a fairchem batch, after refusing non-finite positions or cells
        (:mod:`est_fairchem.models.common.input_checks`)."""
        from est_fairchem.models.common.input_checks import check_finite_structures

        check_finite_structures(data, check_cell=self.use_pbc)
        check_batch_periodicity(data, self.use_pbc)
        edge_index, edge_vec = self.edges(data)
        return edge_index[0], edge_index[1], edge_vec, data.atomic_numbers.long()


class MolecularGraphMixin:
    """fairchem's ``GraphModelMixin.generate_graph`` that also runs on molecules without
    torch_cluster or pyg-lib (neither has wheels in the package registry; fairchem's
    non-periodic branch calls ``torch_geometric``'s ``radius_graph``, which needs one of them).

    Non-periodic batches built on the fly get their edges from :func:`molecular_radius_graph`
    (every neighbour within the cutoff, the nearest ``max_neighbors`` kept: the same graph as
    ``radius_graph`` whenever no atom has more neighbours than that) and the same
    ``GraphData`` fairchem's branch returns; periodic batches and stored graphs go to
    fairchem unchanged.
    """

    def generate_graph(self, data, cutoff=None, max_neighbors=None, use_pbc=None,
                       otf_graph=None, enforce_max_neighbors_strictly=None,
                       use_pbc_single=False):
        check_batch_periodicity(data, bool(use_pbc or self.use_pbc))
        otf = otf_graph or self.otf_graph or getattr(data, "edge_index", None) is None
        if use_pbc or self.use_pbc or not otf:
            return super().generate_graph(
                data, cutoff=cutoff, max_neighbors=max_neighbors, use_pbc=use_pbc,
                otf_graph=otf_graph, enforce_max_neighbors_strictly=enforce_max_neighbors_strictly,
                use_pbc_single=use_pbc_single)
        from fairchem.core.common.utils import compute_neighbors
        from fairchem.core.models.base import GraphData

        edge_index = molecular_radius_graph(data.pos, data.batch, cutoff or self.cutoff,
                                            max_neighbors or self.max_neighbors)
        distance_vec = data.pos[edge_index[0]] - data.pos[edge_index[1]]
        offsets = torch.zeros(edge_index.shape[1], 3, device=data.pos.device)
        return GraphData(
            edge_index=edge_index, edge_distance=distance_vec.norm(dim=-1),
            edge_distance_vec=distance_vec, cell_offsets=offsets,
            offset_distances=torch.zeros_like(offsets),
            neighbors=compute_neighbors(data, edge_index), node_offset=0,
            batch_full=data.batch, atomic_numbers_full=data.atomic_numbers.long())
