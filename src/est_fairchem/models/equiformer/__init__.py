"""Equiformer (Liao & Smidt, ICLR 2023) on e3nn, with an optional EST update block
(design §7, §9.2).

Modules, one concept each:

- ``irreps_norm``: Equiformer's equivariant layer norm on flat irreps features;
- ``tensor_products``: the depthwise ('uvu') tensor product with edge spherical harmonics;
- ``graph_attention``: the equivariant graph-attention message block;
- ``est_update``: the EST update block on irreps (projection to uniform channels and back);
- ``embedding``: atom, tag and edge-degree embeddings;
- ``blocks``: one Equiformer block (attention and update, pre-norm residuals);
- ``backbone``: the fairchem hydra backbones (plain and EST).

Shared with the other backbones: the feed-forward block and gated activation
(:mod:`est_fairchem.nn.irreps_feed_forward`), radius graphs, radial bases and the energy head
(:mod:`est_fairchem.models.common`).

Features are e3nn flat irreps tensors ``[N, irreps.dim]``. Equiformer's OC20 and QM9 models are
SE(3)-equivariant ("1e" denotes a vector whose parity is ignored), and so are these.
"""
