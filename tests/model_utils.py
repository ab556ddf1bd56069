"""Test helpers: small models built through fairchem's registry; LMDB samples via fairchem."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO / "configs/oc20/s2ef/demo/eqv2_small.yml"


def small_model_config(est: dict | None = None, **backbone_overrides) -> dict:
    """The demo's small model section; with ``est`` it becomes the EST backbone."""
    import yaml

    config = copy.deepcopy(yaml.safe_load(DEMO_MODEL.read_text())["model"])
    if est is not None:
        config["backbone"]["model"] = "est_fairchem.models.EquiformerV2ESTBackbone"
        config["backbone"]["est"] = est
    config["backbone"].update(backbone_overrides)
    return {"model": config}


def build(config: dict, seed: int = 0) -> torch.nn.Module:
    from est_fairchem.tools.model_from_config import build_model

    torch.manual_seed(seed)
    return build_model(config)


def seeded_gradients(model: torch.nn.Module, loss, seed: int) -> dict[str, torch.Tensor]:
    """``{name: gradient}`` of ``loss(model)`` after seeding torch's RNG with ``seed`` (so two
    models draw the same random grid rotations); parameters without a gradient left out."""
    torch.manual_seed(seed)
    model.zero_grad()
    loss(model).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def lmdb_samples(path: Path) -> list:
    """All samples of an LMDB dataset, read by fairchem's LmdbDataset (closed afterwards)."""
    from fairchem.core.datasets import LmdbDataset

    dataset = LmdbDataset({"src": str(path)})
    samples = [dataset[i] for i in range(len(dataset))]
    del dataset  # its __del__ closes the LMDB (lmdb refuses a second open in one process)
    return samples


def est_fairchem_cli() -> list[str]:
    """The command line that runs ``est-fairchem`` of this environment."""
    import sys

    script = Path(sys.executable).with_name("est-fairchem")
    return [str(script)] if script.exists() else [sys.executable, "-m", "est_fairchem.cli"]
