"""EquiformerV2 (fairchem's) whose feed-forward update blocks are EST (OC20 S2EF; design §6).

Modules, one concept each:

- ``backbone``: the fairchem hydra backbone ``est_fairchem.models.EquiformerV2ESTBackbone``;
- ``experts``: EquiformerV2 feed-forward blocks as steerable experts, run batched;
- ``checkpoint``: reading fairchem's EquiformerV2 checkpoints (hydra and pre-hydra layouts);
- ``warm_start``: an EquiformerV2 checkpoint's weights into an EST model of the same size;
- ``warm_start_hydra``: the same from a config key (``model.warm_start``).
"""
