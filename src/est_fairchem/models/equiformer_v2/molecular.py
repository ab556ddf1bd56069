"""fairchem's EquiformerV2 backbone, unchanged, that also runs on molecules without torch_cluster.

fairchem's ``equiformer_v2_backbone`` builds non-periodic graphs with ``torch_geometric``'s
``radius_graph``, which needs torch_cluster or pyg-lib; the package registry has wheels of
neither. This is the same backbone (same parameters, same forward, same checkpoints) with
the neighbour search of :class:`~est_fairchem.models.common.graph.MolecularGraphMixin` for
molecules (QM9); periodic systems are fairchem's path, after the package's check that a batch
does not mix periodic and non-periodic structures. Its checkpoints keep the graph statistics
(``avg_num_nodes``, ``avg_degree``) and a load with other values is refused, as for the EST
backbones (:mod:`~est_fairchem.models.common.graph_statistics`): the baseline configs use it
rather than ``equiformer_v2_backbone``, whose checkpoints keep neither. Configs::

    backbone:
      model: est_fairchem.models.EquiformerV2Backbone
      use_pbc: False
      ...every equiformer_v2_backbone option...
"""

from __future__ import annotations

from fairchem.core.models.equiformer_v2.equiformer_v2 import (
    EquiformerV2Backbone as FairchemEquiformerV2Backbone,
)

from est_fairchem.models.common.graph import MolecularGraphMixin
from est_fairchem.models.common.graph_statistics import (
    StoredGraphStatistics,
    check_graph_statistics,
)


class EquiformerV2Backbone(StoredGraphStatistics, MolecularGraphMixin,
                           FairchemEquiformerV2Backbone):
    """fairchem's ``EquiformerV2Backbone`` with molecular graphs built without torch_cluster;
    ``avg_num_nodes`` / ``avg_degree`` must be positive (fairchem replaces 0 by its OC20
    values) and are stored in its checkpoints."""

    def __init__(self, *args, **options) -> None:
        check_graph_statistics(avg_num_nodes=options.get("avg_num_nodes"),
                               avg_degree=options.get("avg_degree"))
        super().__init__(*args, **options)
        self.graph_statistics = {"avg_num_nodes": self.avg_num_nodes,
                                 "avg_degree": self.avg_degree}
