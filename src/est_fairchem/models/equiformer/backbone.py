"""Equiformer as a fairchem hydra backbone, plain or with EST update blocks (design §7, §9.2).

Configs name the classes by their dotted paths (``est_fairchem.models.EquiformerBackbone``,
``est_fairchem.models.EquiformerESTBackbone``) so the plain ``fairchem`` command finds them.
Option names follow Equiformer's own configs (``irreps_node_embedding``, ``irreps_mlp_mid``,
``fc_neurons``, ...). Output: ``{"node_embedding": [N, irreps_feature.dim]}``, the final
normalised node features (Equiformer's OC20 and QM9 models end in scalars, ``512x0e``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from e3nn import o3
from fairchem.core.common.registry import registry
from fairchem.core.models.base import BackboneInterface
from torch import nn

from est_fairchem.errors import InputError
from est_fairchem.models.common.est_preset import log_est_options, preset_name
from est_fairchem.models.common.est_resolution import resolve_est_options
from est_fairchem.models.common.graph import RadiusGraphBackbone
from est_fairchem.models.common.graph_statistics import (
    StoredGraphStatistics,
    check_graph_statistics,
)
from est_fairchem.models.common.init import init_equiformer_weights
from est_fairchem.models.common.radial import BesselRadialBasis, GaussianRadialBasis
from est_fairchem.models.common.trained_options import StoredESTOptions, function_options
from est_fairchem.models.equiformer.blocks import FeedForwardUpdate, TransBlock
from est_fairchem.models.equiformer.embedding import IrrepsEdgeDegreeEmbedding, ScalarEmbedding
from est_fairchem.models.equiformer.est_update import EquiformerESTUpdate
from est_fairchem.models.equiformer.graph_attention import GraphAttention
from est_fairchem.models.equiformer.irreps_norm import EquivariantLayerNorm
from est_fairchem.nn.irreps_feed_forward import FeedForward

NUM_OC20_TAGS = 3  # 0 sub-surface, 1 surface, 2 adsorbate
OC20_IS2RE_AVG_DEGREE = 23.395238876342773  # Equiformer's IS2RE statistic, 5 A (design §9.3)


def _irreps(name: str, value: str) -> o3.Irreps:
    try:
        irreps = o3.Irreps(value)
    except (ValueError, AssertionError) as err:
        raise InputError(f"{name}={value!r}: expected e3nn irreps such as '256x0e+128x1e' ({err})") from None
    if irreps.dim == 0:
        raise InputError(f"{name}={value!r}: expected non-empty irreps")
    return irreps


@registry.register_model("est_equiformer_backbone")
class EquiformerBackbone(StoredGraphStatistics, RadiusGraphBackbone, nn.Module,
                         BackboneInterface):
    """Equiformer's equivariant graph-attention transformer (plain feed-forward updates).

    Args:
        irreps_node_embedding: node irreps, scalars first (IS2RE ``256x0e+128x1e``).
        num_layers: transformer blocks.
        irreps_sh: edge harmonics (IS2RE ``1x0e+1x1e``).
        max_radius: cutoff in Angstrom; max_neighbors: neighbours kept per atom.
        number_of_basis: radial basis size; basis_type: ``gaussian`` (Equiformer's learnable
            Gaussians) or ``bessel``. radial_element_affine: the Gaussians' per-element-pair
            affine instead of Equiformer's one scalar affine (``GaussianRadialBasis``; for
            checkpoints made before the basis matched Equiformer).
        fc_neurons: hidden widths of the radial MLPs.
        irreps_feature: output irreps of the last block (``512x0e``).
        irreps_head, num_heads, irreps_pre_attn, nonlinear_message, alpha_drop: attention.
        irreps_mlp_mid: hidden irreps of the feed-forward blocks.
        drop_path_rate: stochastic depth.
        max_num_elements: size of the element tables; use_tags: embed OC20 tags too.
        avg_degree: average incoming edges, normalising the edge-degree embedding.
        use_pbc, otf_graph, enforce_max_neighbors_strictly: fairchem's graph options
            (non-periodic graphs are built here, without torch_cluster).
    """

    def __init__(
        self,
        irreps_node_embedding: str = "256x0e+128x1e",
        num_layers: int = 6,
        irreps_sh: str = "1x0e+1x1e",
        max_radius: float = 5.0,
        max_neighbors: int = 500,
        number_of_basis: int = 128,
        basis_type: str = "gaussian",
        radial_element_affine: bool = False,
        fc_neurons: Sequence[int] = (64, 64),
        irreps_feature: str = "512x0e",
        irreps_head: str = "32x0e+16x1e",
        num_heads: int = 8,
        irreps_pre_attn: str | None = None,
        nonlinear_message: bool = True,
        irreps_mlp_mid: str = "768x0e+384x1e",
        alpha_drop: float = 0.2,
        drop_path_rate: float = 0.0,
        max_num_elements: int = 90,
        use_tags: bool = True,
        avg_degree: float = OC20_IS2RE_AVG_DEGREE,
        use_pbc: bool = True,
        otf_graph: bool = True,
        enforce_max_neighbors_strictly: bool = True,
        regress_forces: bool = False,
    ) -> None:
        super().__init__()
        if regress_forces:
            raise InputError("regress_forces=True: the Equiformer backbone predicts energies only "
                             "(IS2RE, QM9); use EquiformerV2 models for forces")
        self.irreps_node = _irreps("irreps_node_embedding", irreps_node_embedding)
        if self.irreps_node[0].ir != o3.Irrep("0e") or self.irreps_node != self.irreps_node.simplify():
            raise InputError(f"irreps_node_embedding={irreps_node_embedding!r}: expected simplified "
                             "irreps starting with the scalars, e.g. '256x0e+128x1e'")
        self.irreps_sh = _irreps("irreps_sh", irreps_sh)
        self.irreps_feature = _irreps("irreps_feature", irreps_feature)
        self.irreps_head = _irreps("irreps_head", irreps_head)
        self.irreps_mlp_mid = _irreps("irreps_mlp_mid", irreps_mlp_mid)
        self.irreps_pre_attn = _irreps("irreps_pre_attn", irreps_pre_attn or irreps_node_embedding)
        if basis_type not in ("gaussian", "bessel"):
            raise InputError(f"basis_type={basis_type!r}: expected 'gaussian' or 'bessel'")
        if num_layers < 1:
            raise InputError(f"num_layers={num_layers}: expected at least 1")
        check_graph_statistics(avg_degree=avg_degree)
        self.graph_statistics = {"avg_degree": avg_degree}

        self.set_graph_options(max_radius, max_neighbors, use_pbc, otf_graph,
                               enforce_max_neighbors_strictly)

        fc_neurons = list(fc_neurons)
        self.atom_embedding = ScalarEmbedding(self.irreps_node, max_num_elements)
        self.tag_embedding = ScalarEmbedding(self.irreps_node, NUM_OC20_TAGS) if use_tags else None
        if basis_type == "gaussian":
            self.radial_basis = GaussianRadialBasis(number_of_basis, max_radius, max_num_elements,
                                                    element_affine=radial_element_affine)
        else:
            self.radial_basis = BesselRadialBasis(number_of_basis, max_radius)
        self.edge_degree_embedding = IrrepsEdgeDegreeEmbedding(
            self.irreps_node, self.irreps_sh, number_of_basis, fc_neurons, avg_degree
        )
        self.blocks = nn.ModuleList()
        for i in range(num_layers):
            irreps_out = self.irreps_feature if i == num_layers - 1 else self.irreps_node
            attention = GraphAttention(
                self.irreps_node, self.irreps_sh, self.irreps_node, number_of_basis, fc_neurons,
                self.irreps_head, num_heads, self.irreps_pre_attn, nonlinear_message, alpha_drop,
            )
            update = self.build_update(self.irreps_node, self.irreps_mlp_mid, irreps_out)
            self.blocks.append(TransBlock(self.irreps_node, irreps_out, attention, update, drop_path_rate))
        self.norm = EquivariantLayerNorm(self.irreps_feature)
        self.apply(init_equiformer_weights)

    def build_update(self, irreps_in: o3.Irreps, irreps_mid: o3.Irreps, irreps_out: o3.Irreps) -> nn.Module:
        """The update block of one transformer block: Equiformer's feed-forward network."""
        return FeedForwardUpdate(FeedForward(irreps_in, irreps_mid, irreps_out))

    def forward(self, data) -> dict[str, torch.Tensor]:
        """fairchem batch -> ``{"node_embedding": [N, irreps_feature.dim]}``; non-finite
        positions or cells are refused (:mod:`est_fairchem.models.common.input_checks`)."""
        edge_src, edge_dst, edge_vec, atomic_numbers = self.graph_inputs(data)
        num_nodes = atomic_numbers.shape[0]
        edge_sh = o3.spherical_harmonics(self.irreps_sh, edge_vec, normalize=True,
                                         normalization="component")
        edge_radial = self.radial_basis(edge_vec.norm(dim=1), atomic_numbers, edge_src, edge_dst)
        x = self.atom_embedding(atomic_numbers).to(edge_vec.dtype)
        if self.tag_embedding is not None:
            x = x + self.tag_embedding(data.tags.long())
        x = x + self.edge_degree_embedding(num_nodes, edge_dst, edge_sh, edge_radial)
        for block in self.blocks:
            x = block(x, edge_src, edge_dst, edge_sh, edge_radial, data.batch)
        return {"node_embedding": self.norm(x)}


@registry.register_model("est_equiformer_est_backbone")
class EquiformerESTBackbone(StoredESTOptions, EquiformerBackbone):
    """Equiformer whose update blocks are EST (design §7): every Equiformer option plus ``est``
    (see :class:`est_fairchem.models.common.est_config.ESTConfig`; checkpoints keep them:
    :mod:`est_fairchem.models.common.trained_options`); the steerable experts are Equiformer
    feed-forward networks with ``irreps_mlp_mid``, so ``steerable_hidden_channels`` does not
    apply."""

    def __init__(self, est: dict[str, Any] | None = None, **equiformer_options: Any) -> None:
        irreps = _irreps("irreps_node_embedding",
                         equiformer_options.get("irreps_node_embedding", "256x0e+128x1e"))
        widest = max([mul for mul, ir in irreps if ir.l > 0], default=irreps.count("0e"))
        self.est_config = resolve_est_options(est, "equiformer", irreps.lmax, widest)
        self.est_options = function_options(self.est_config)
        log_est_options(self, preset_name(est))
        super().__init__(**equiformer_options)

    def build_update(self, irreps_in: o3.Irreps, irreps_mid: o3.Irreps, irreps_out: o3.Irreps) -> nn.Module:
        return EquiformerESTUpdate(irreps_in, irreps_mid, irreps_out, self.est_config)
