"""The pure EST model (paper Figure 3, design §8) as a fairchem hydra backbone.

Configs name it by its dotted path ``est_fairchem.models.ESTBackbone``. Node features are
uniform steerable tensors ``[N, (L+1)^2, C]`` (EquiformerV2's layout; QM9: L = 2, C = 128):

    x  = Emb(Z_i) in the l=0 row + UniformEdgeDegreeEmbedding           initial features
    per layer:
      x <- x + DropPath(Message(LN_1(x)))                        EST message block (cross-attn)
      x <- x + DropPath(Update(LN_2(x)))                         EST update block (self-attn MoHE)
    out = LN(x^(0))                                              ``{"node_embedding": [N, C]}``

The head reads only the invariant channels, so the last layer's update returns the degree-0
row only (``scalar_output``: the grid's own degree-0 output, steerable experts to ``C x 0e``)
and the final norm is a LayerNorm of those channels: every parameter reaches the output.

LN_1, LN_2 are :class:`~est_fairchem.nn.uniform_layers.EquivariantRMSNorm`; the update
block is :class:`~est_fairchem.nn.est_update.ESTUpdate` whose steerable experts are Equiformer
feed-forward blocks on the uniform layout. The output holds the invariant (l=0) channels, so
:class:`~est_fairchem.models.common.heads.EquiformerScalarHead` serves as the head
(``irreps_feature`` = ``C x 0e``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from e3nn import o3
from fairchem.core.common.registry import registry
from fairchem.core.models.base import BackboneInterface
from fairchem.core.models.equiformer_v2.drop import GraphDropPath
from torch import nn

from est_fairchem.errors import InputError
from est_fairchem.models.common.graph import RadiusGraphBackbone
from est_fairchem.models.common.init import init_equiformer_weights
from est_fairchem.models.common.radial import (
    BesselRadialBasis, GaussianRadialBasis, polynomial_envelope,
)
from est_fairchem.models.common.est_preset import log_est_options, preset_name
from est_fairchem.models.common.est_resolution import resolve_est_options
from est_fairchem.models.common.graph_statistics import check_graph_statistics
from est_fairchem.models.common.trained_options import StoredESTOptions, function_options
from est_fairchem.models.pure_est.config import MessageConfig
from est_fairchem.models.pure_est.embedding import UniformEdgeDegreeEmbedding, edge_harmonics
from est_fairchem.models.pure_est.message import ESTMessageBlock
from est_fairchem.nn.est_update import ESTUpdate
from est_fairchem.nn.recompute import recomputed_in_backward
from est_fairchem.nn.uniform_layers import EquivariantRMSNorm, UniformFeedForward
from est_fairchem.sphere.points import sphere_points
from est_fairchem.sphere.transform import SphericalTransform

QM9_AVG_DEGREE = 15.57930850982666  # Equiformer's QM9 statistic, 5 A cutoff (design §9.3)


class ESTLayer(nn.Module):
    """One EST layer: pre-norm message block and pre-norm update block, each with a residual.

    Args:
        lmax: L; channels: C.
        message: the message block; update: the update block (``ESTUpdate``).
        drop_path_rate: stochastic depth probability (per system).
    """

    def __init__(self, lmax: int, channels: int, message: ESTMessageBlock, update: ESTUpdate,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.norm_1 = EquivariantRMSNorm(lmax, channels)
        self.message = message
        self.norm_2 = EquivariantRMSNorm(lmax, channels)
        self.update = update
        self.drop_path = GraphDropPath(drop_path_rate) if drop_path_rate > 0 else None

    def _drop(self, y: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        if self.drop_path is None:
            return y
        return self.drop_path(y.flatten(1), batch).view_as(y)

    def forward(self, x: torch.Tensor, edge_src: torch.Tensor, edge_dst: torch.Tensor,
                edge_radial: torch.Tensor, edge_sh: torch.Tensor, batch: torch.Tensor,
                edge_envelope: torch.Tensor | None = None) -> torch.Tensor:
        """[N, K, C] -> [N, K, C] ([N, 1, C] when the update has ``scalar_output``)."""
        m = self.message(self.norm_1(x), edge_src, edge_dst, edge_radial, edge_sh, batch,
                         edge_envelope)
        x = x + self._drop(m.to(x.dtype), batch)
        y = self._drop(self.update(self.norm_2(x), batch).to(x.dtype), batch)
        if y.shape[1] == 1:  # a last layer's scalar output: only degree 0 is read after it
            return x.narrow(1, 0, 1) + y
        return x + y


@registry.register_model("est_pure_backbone")
class ESTBackbone(StoredESTOptions, RadiusGraphBackbone, nn.Module, BackboneInterface):
    """The pure EST message-passing model (see the module docstring); checkpoints keep its
    ``est`` options (:mod:`est_fairchem.models.common.trained_options`).

    Args:
        lmax: L of the node features; channels: C per degree.
        num_layers: EST layers.
        max_radius: cutoff (Angstrom); max_neighbors: neighbours kept per atom.
        number_of_basis, basis_type: radial basis (``gaussian``: Equiformer's learnable
            Gaussians on d / cutoff; or ``bessel`` with a smooth envelope).
        radial_element_affine: the Gaussians' per-element-pair affine instead of one scalar
            affine (``GaussianRadialBasis``; checkpoints made before the basis matched
            Equiformer).
        fc_neurons: hidden widths of the radial MLPs.
        irreps_mlp_mid: hidden irreps of every steerable expert (feed-forward block).
        max_num_elements: element table size.
        avg_degree: average incoming edges (message and edge-degree normalisation).
        alpha_drop: dropout on the cross-attention weights; drop_path_rate: stochastic depth.
        est: options of the spherical grid and the update block
            (:class:`~est_fairchem.models.common.est_config.ESTConfig`; ``fourier_channels`` and
            ``steerable_hidden_channels`` do not apply: the grid carries C channels and the
            steerable experts take ``irreps_mlp_mid``).
        message: options of the message block
            (:class:`~est_fairchem.models.pure_est.config.MessageConfig`).
        activation_checkpointing: recompute each layer in the backward pass instead of keeping
            its activations (the per-edge grids, E x S x C each, dominate memory).
        use_pbc, otf_graph, enforce_max_neighbors_strictly: graph options (molecules:
            ``use_pbc: False``, radius graphs built here without torch_cluster).
        regress_forces: must be False (invariant targets only).
    """

    def __init__(
        self,
        lmax: int = 2,
        channels: int = 128,
        num_layers: int = 6,
        max_radius: float = 5.0,
        max_neighbors: int = 500,
        number_of_basis: int = 128,
        basis_type: str = "gaussian",
        radial_element_affine: bool = False,
        fc_neurons: Sequence[int] = (64, 64),
        irreps_mlp_mid: str = "384x0e+192x1e+96x2e",
        max_num_elements: int = 90,
        avg_degree: float = QM9_AVG_DEGREE,
        alpha_drop: float = 0.0,
        drop_path_rate: float = 0.0,
        est: dict[str, Any] | None = None,
        message: dict[str, Any] | None = None,
        activation_checkpointing: bool = False,
        use_pbc: bool = False,
        otf_graph: bool = True,
        enforce_max_neighbors_strictly: bool = True,
        regress_forces: bool = False,
    ) -> None:
        super().__init__()
        if regress_forces:
            raise InputError("regress_forces=True: the EST backbone predicts invariant "
                             "targets only (QM9); use EquiformerV2 models for forces")
        for key, value in (("lmax", lmax), ("channels", channels), ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{key}={value!r}: expected a positive integer")
        if basis_type not in ("gaussian", "bessel"):
            raise InputError(f"basis_type={basis_type!r}: expected 'gaussian' or 'bessel'")
        check_graph_statistics(avg_degree=avg_degree)
        self.graph_statistics = {"avg_degree": avg_degree}
        try:
            mid = o3.Irreps(irreps_mlp_mid)
        except (ValueError, AssertionError) as err:
            raise InputError(f"irreps_mlp_mid={irreps_mlp_mid!r}: expected e3nn irreps such as "
                             f"'384x0e+192x1e+96x2e' ({err})") from None
        self.est_config = resolve_est_options(est, "pure_est", lmax, channels)
        self.message_config = MessageConfig.from_mapping(message).resolved(channels)
        self.est_options = {**function_options(self.est_config),
                            **function_options(self.message_config, "message")}
        log_est_options(self, preset_name(est))

        self.lmax = lmax
        self.channels = channels
        self.set_graph_options(max_radius, max_neighbors, use_pbc, otf_graph,
                               enforce_max_neighbors_strictly)
        self.activation_checkpointing = activation_checkpointing
        self.irreps_feature = o3.Irreps(f"{channels}x0e")  # what the scalar head reads
        fc_neurons = list(fc_neurons)
        config = self.est_config

        self.atom_embedding = nn.Embedding(max_num_elements, channels)
        if basis_type == "gaussian":
            self.radial_basis = GaussianRadialBasis(number_of_basis, max_radius, max_num_elements,
                                                    element_affine=radial_element_affine)
        else:
            self.radial_basis = BesselRadialBasis(number_of_basis, max_radius)
        self.edge_degree_embedding = UniformEdgeDegreeEmbedding(
            lmax, channels, number_of_basis, fc_neurons, max_num_elements, avg_degree
        )
        points = sphere_points(config.sampling, config.num_points, config.repulsion_steps)
        self.transform = SphericalTransform(lmax, points)
        self.layers = nn.ModuleList()
        for index in range(num_layers):
            last = index == num_layers - 1
            message_block = ESTMessageBlock(
                lmax, channels, number_of_basis, fc_neurons, mid, self.transform,
                self.message_config, config.num_heads, config.orientation_embedding,
                config.random_grid_rotation, avg_degree, alpha_drop,
            )
            experts = [UniformFeedForward(lmax, channels, mid, scalar_output=last)
                       for _ in range(config.num_steerable_experts)]
            update = config.update_block(lmax, channels, experts, scalar_output=last)
            self.layers.append(ESTLayer(lmax, channels, message_block, update, drop_path_rate))
        self.norm = nn.LayerNorm(channels, eps=1e-5)  # of the invariant channels
        self.apply(init_equiformer_weights)

    def forward(self, data) -> dict[str, torch.Tensor]:
        """fairchem batch -> ``{"node_embedding": [N, C]}`` (invariant channels); non-finite
        positions or cells are refused (:mod:`est_fairchem.models.common.input_checks`)."""
        edge_src, edge_dst, edge_vec, atomic_numbers = self.graph_inputs(data)
        edge_sh = edge_harmonics(self.lmax, edge_vec)
        edge_length = edge_vec.norm(dim=1)
        edge_radial = self.radial_basis(edge_length, atomic_numbers, edge_src, edge_dst)
        edge_envelope = polynomial_envelope(edge_length / self.cutoff)  # [E]: 0 at the cutoff
        scalars = self.atom_embedding(atomic_numbers).to(edge_vec.dtype)
        x = self.edge_degree_embedding(atomic_numbers, edge_src, edge_dst, edge_radial, edge_sh,
                                       edge_envelope)
        x = torch.cat([x[:, :1] + scalars[:, None], x[:, 1:]], dim=1)  # [N, K, C]
        for layer in self.layers:
            args = (x, edge_src, edge_dst, edge_radial, edge_sh, data.batch, edge_envelope)
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                # (the random grid rotations are redrawn identically in the recomputation)
                x = recomputed_in_backward(layer, *args)
            else:
                x = layer(*args)
        return {"node_embedding": self.norm(x.select(1, 0))}
