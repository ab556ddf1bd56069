"""Equiformer (Liao & Smidt, ICLR 2023) on e3nn, with an optional EST update block (spec §7, §9.2).

Modules, one concept each:

- ``irreps_norm``: Equiformer's equivariant layer norm on flat irreps features;
- ``radial``: learnable Gaussian and Bessel radial bases, the radial profile MLP;
- ``tensor_products``: the depthwise ('uvu') tensor product with edge spherical harmonics and
  the gated equivariant activation;
- ``feed_forward``: Equiformer's feed-forward update block (linear -> gate -> linear);
- ``graph_attention``: the equivariant graph-attention message block;
- ``est_update``: the EST update block on irreps (projection to uniform channels and back);
- ``embedding``: atom, tag and edge-degree embeddings;
- ``graph``: radius graphs (fairchem's periodic ones, and non-periodic ones without torch_cluster);
- ``backbone`` / ``heads``: the fairchem hydra backbone and energy head.

Features are e3nn flat irreps tensors ``[N, irreps.dim]``. Equiformer's OC20 and QM9 models are
SE(3)-equivariant ("1e" denotes a vector whose parity is ignored), and so are these.
"""
