"""The pure EST model (paper Figure 3, spec §8): every layer is an EST message block (spherical
cross-attention between node and edge functions) followed by an EST update block.

Modules, one concept each:

- ``layers``: degree-wise linear maps, the equivariant RMS layer norm and the steerable
  feed-forward expert on uniform features ``[N, (L+1)^2, C]``;
- ``cross_attention``: spherical cross-attention, S query points over S key points;
- ``message``: the EST message block (query = node pair, key/value = edge geometry);
- ``embedding``: edge geometry (radial basis, harmonics) and the edge-degree embedding;
- ``config``: typed options of the message block;
- ``backbone``: the fairchem hydra backbone ``est_fairchem.models.ESTBackbone``.
"""
