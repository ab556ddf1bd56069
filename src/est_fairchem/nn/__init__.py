"""Blocks acting on steerable features: the EST update (gate, steerable and spherical
experts, spherical attention, local frame), spherical cross-attention, degree-wise layers in
the uniform layout ``[N, (L+1)^2, C]`` and Equiformer's feed-forward block on flat irreps, with
the conversions between the two layouts."""

from est_fairchem.nn.est_update import ESTUpdate
from est_fairchem.nn.experts import ExpertGate, SphericalExperts
from est_fairchem.nn.spherical_attention import SphericalAttention

__all__ = ["ESTUpdate", "ExpertGate", "SphericalAttention", "SphericalExperts"]
