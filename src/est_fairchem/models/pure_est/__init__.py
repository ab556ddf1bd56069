"""The pure EST model (paper Figure 3, design §8): every layer is an EST message block (spherical
cross-attention between node and edge functions) followed by an EST update block.

Modules, one concept each:

- ``message``: the EST message block (query = node pair, key/value = edge geometry);
- ``embedding``: edge geometry (radial basis, harmonics) and the edge-degree embedding;
- ``config``: typed options of the message block;
- ``backbone``: the fairchem hydra backbone ``est_fairchem.models.ESTBackbone``.

Its blocks on uniform features ``[N, (L+1)^2, C]`` are in :mod:`est_fairchem.nn`
(``uniform_layers``: degree-wise linear maps, the equivariant RMS norm, the steerable expert;
``spherical_cross_attention``); graphs, radial bases, the head and initialisation in
:mod:`est_fairchem.models.common`.
"""
