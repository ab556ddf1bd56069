"""Blocks acting on steerable features: the EST update (gate, steerable experts and the
spherical branch: spherical attention, spherical experts, local frame), spherical
cross-attention, degree-wise layers in the uniform layout ``[N, (L+1)^2, C]`` and Equiformer's
feed-forward block on flat irreps, with the conversions between the two layouts."""

from est_fairchem.nn.est_update import ESTUpdate
from est_fairchem.nn.experts import ExpertGate, SphericalExperts
from est_fairchem.nn.spherical_attention import SphericalAttention
from est_fairchem.nn.spherical_branch import SphericalBranch

__all__ = ["ESTUpdate", "ExpertGate", "SphericalAttention", "SphericalBranch", "SphericalExperts"]
