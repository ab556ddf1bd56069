"""A rank-2 symmetric stress head that rotates exactly as R s R^T.

fairchem's ``rank2_symmetric_head`` (the OMat24 / MPtrj EquiformerV2 head) applies its
per-channel MLPs, biases and SiLU included, to the components of the degree-2 features, so its
stress rotates only approximately (measured in float64 with random weights: relative error
0.12 on plain EquiformerV2, 0.05 on EST-EquiformerV2; ``tests/test_stress.py``).
:class:`EquivariantRank2Head` keeps fairchem's head's parts and parameter names, so the
weights of an OMat24 / MPtrj checkpoint load into it, and changes where the MLPs act:

    x_e   = LN(sum_k Y_k(r_e) x_(dst e), k)          invariant edge features (fairchem's)
    s_iso = mean_systems mean_edges MLP_0(x_e)                       [B, 1]
    s_2   = mean_systems mean_edges MLP_2(x_e) P_2(r_e r_e^T)        [B, 5]

``MLP_2`` now gates the degree-2 part ``P_2`` of each edge's unit outer product (in the basis
of fairchem's ``cg_change_mat``, the basis its trainer reassembles the 3x3 stress in) with an
invariant weight, instead of acting on the degree-2 components themselves. The outputs keep
fairchem's keys (``<output_name>_isotropic`` [B, 1], ``<output_name>_anisotropic`` [B, 5]),
so configs, losses, normalizers and the trainer's stress metrics are unchanged.
"""

from __future__ import annotations

import torch
from fairchem.core.common.registry import registry
from fairchem.core.common.utils import cg_change_mat
from fairchem.core.models.equiformer_v2.heads.rank2 import Rank2SymmetricTensorHead
from torch_scatter import scatter

from est_fairchem.errors import InputError
from est_fairchem.models.common.graph_statistics import check_graph_statistics


@registry.register_model("est_equivariant_rank2_head")
class EquivariantRank2Head(Rank2SymmetricTensorHead):
    """fairchem's decomposed rank-2 head, made exactly equivariant (module docstring).

    Args: those of fairchem's ``rank2_symmetric_head`` (``decompose`` must stay true; the
    head is intensive: ``extensive`` is refused).
    """

    def __init__(self, backbone, output_name: str = "stress", decompose: bool = True,
                 edge_level_mlp: bool = False, num_mlp_layers: int = 2,
                 use_source_target_embedding: bool = False, extensive: bool = False,
                 avg_num_nodes: float = 1.0, default_norm_type: str = "layer_norm_sh") -> None:
        if not decompose:
            raise InputError("EquivariantRank2Head: decompose must be true (it predicts the "
                             "isotropic and anisotropic parts)")
        if extensive:
            raise InputError("EquivariantRank2Head: extensive must be false (mean pooling)")
        check_graph_statistics(avg_num_nodes=avg_num_nodes)  # unused (mean pooling) but set
        super().__init__(backbone, output_name, True, edge_level_mlp, num_mlp_layers,
                         use_source_target_embedding, False, avg_num_nodes, default_norm_type)
        # rows 4-8 of fairchem's rank-2 change of basis: Cartesian 3x3 -> its degree-2 part
        self.register_buffer("degree_two_basis", cg_change_mat(2)[4:9].clone(), persistent=False)

    def edge_features(self, emb: dict) -> torch.Tensor:
        """[E, C'] invariant edge features: the target (and with
        ``use_source_target_embedding`` the source) atom's embedding contracted with the
        edge's spherical harmonics, as fairchem's head computes them."""
        from e3nn import o3

        node_emb, graph = emb["node_embedding"], emb["graph"]
        harmonics = o3.spherical_harmonics(list(range(node_emb.lmax_list[-1] + 1)),
                                           graph.edge_distance_vec, False).detach()
        harmonics = self.sphharm_norm(harmonics[:, :, None]).squeeze(-1)  # [E, K]
        x_edge = node_emb.expand_edge(graph.edge_index[1]).embedding
        if self.use_source_target_embedding:
            x_source = node_emb.expand_edge(graph.edge_index[0]).embedding
            x_edge = torch.cat((x_source, x_edge), dim=2)
        return self.xedge_layer_norm(torch.einsum("ekc,ek->ec", x_edge, harmonics))

    def forward(self, data, emb: dict) -> dict[str, torch.Tensor]:
        """-> ``{<output_name>_isotropic: [B, 1], <output_name>_anisotropic: [B, 5]}``."""
        graph = emb["graph"]
        x_edge = self.edge_features(emb)
        direction = graph.edge_distance_vec / graph.edge_distance_vec.norm(dim=1, keepdim=True)
        outer = (direction[:, :, None] * direction[:, None, :]).reshape(-1, 9)
        degree_two = outer @ self.degree_two_basis.to(outer.dtype).T  # [E, 5]: l = 2 of r r^T
        target = graph.edge_index[1]
        if self.block.edge_level:
            isotropic = scatter(self.block.scalar_MLP(x_edge), target, dim=0, reduce="mean")
        else:
            isotropic = self.block.scalar_MLP(scatter(x_edge, target, dim=0, reduce="mean"))
        anisotropic = scatter(self.block.irrep2_MLP(x_edge) * degree_two, target, dim=0,
                              reduce="mean")
        batch = data.batch
        size = len(data.natoms)
        return {
            f"{self.output_name}_isotropic": scatter(isotropic, batch, dim=0, dim_size=size,
                                                     reduce="mean"),
            f"{self.output_name}_anisotropic": scatter(anisotropic, batch, dim=0,
                                                       dim_size=size, reduce="mean"),
        }
