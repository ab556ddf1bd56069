"""EST building blocks: spherical attention, experts and gate, the EST update."""

from est_fairchem.nn.est_update import ESTUpdate
from est_fairchem.nn.experts import ExpertGate, SphericalExperts
from est_fairchem.nn.spherical_attention import SphericalAttention

__all__ = ["ESTUpdate", "ExpertGate", "SphericalAttention", "SphericalExperts"]
