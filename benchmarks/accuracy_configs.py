"""The fairchem configs of the accuracy study (benchmarks/accuracy.py): models, data and schedule.

Every run is a plain fairchem YAML config a user could run with ``fairchem --mode train``: the
repository's model files with their ``est:`` block replaced, the task and target files of the
QM9 and OC20 configs, and the data (real QM9 LMDBs from ``prepare-qm9 --raw qm9pack``, or
``oxides.db`` through fairchem's ``ase_db`` format). Only the training length differs between
the two protocols (equal steps, equal wall-clock).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import REPO

OXIDES_DB = REPO.parent / "shared/data/fairchem-tutorial/oxides.db"

# oxides.db has no key-value pairs; each oxide's polymorphs differ in cell size (3, 6, 12 and
# 24 atoms; ASE's selection reads natoms). The 24-atom polymorph of every oxide is held out
# for the test, the 3-atom one for validation: the test is a polymorph the model never saw,
# not an interpolation between volumes of a seen one.
OXIDE_SPLITS = {"train": "natoms>3,natoms<24", "val": "natoms=3", "test": "natoms=24"}


@dataclass(frozen=True)
class Target:
    """A learned property: the repository file that defines it, fairchem's metric, units."""

    config: str  # the target's YAML (outputs, loss, metrics, head), relative to the repo
    metric: str  # fairchem's logged metric (eV or eV/atom)
    unit: str  # the paper's unit of the MAE (1000 x the metric)


@dataclass(frozen=True)
class Model:
    """A backbone from a repository model file, with its ``est:`` block replaced."""

    base: str  # model YAML relative to the repo (small size; ``large`` for --size large)
    large: str
    backbone: str | None = None  # replace backbone.model (the plain baseline)
    est: dict | None = None  # the est: block; None: no est key (a plain model)
    baseline: bool = False


QM9_TARGETS = {
    "u0": Target("configs/qm9/targets/u0.yml", "u0_atomization_mae", "meV"),
    "homo": Target("configs/qm9/targets/homo.yml", "homo_mae", "meV"),
}
OXIDE_TARGETS = {"energy": Target("", "energy_per_atom_mae", "meV/atom")}

QM9_MODELS = {
    "equiformer": Model("configs/qm9/demo/est_ga_small.yml", "configs/qm9/base/model_est_ga.yml",
                        backbone="est_fairchem.models.EquiformerBackbone", baseline=True),
    "est_ga_default": Model("configs/qm9/demo/est_ga_small.yml",
                            "configs/qm9/base/model_est_ga.yml", est={}),
    "pure_est_default": Model("configs/qm9/demo/est_small.yml", "configs/qm9/base/model_est.yml",
                              est={}),
    "pure_est_paper": Model("configs/qm9/demo/est_small.yml", "configs/qm9/base/model_est.yml",
                            est={"preset": "paper"}),
}
OXIDE_MODELS = {
    "equiformer_v2": Model("configs/oc20/s2ef/demo/eqv2_small.yml",
                           "configs/oc20/s2ef/demo/eqv2_small.yml", baseline=True),
    "est_eqv2_default": Model("configs/oc20/s2ef/demo/eqv2_small.yml",
                              "configs/oc20/s2ef/demo/eqv2_small.yml", est={}),
    "est_eqv2_paper": Model("configs/oc20/s2ef/demo/eqv2_small.yml",
                            "configs/oc20/s2ef/demo/eqv2_small.yml", est={"preset": "paper"}),
}


@dataclass(frozen=True)
class Size:
    """How much data and training a study gets (``small``: this 2-core machine)."""

    qm9_train: int | None  # molecules of the release's training split (None: all)
    qm9_val: int | None
    qm9_test: int | None
    qm9_epochs: int
    qm9_batch: int
    oxide_epochs: int
    oxide_batch: int
    oxide_backbone: dict  # overrides of the small EquiformerV2 for the oxides study
    large_models: bool  # the paper-size QM9 model files


# ``small`` fits a few hours on this 2-core machine, one run per core. Measured on one core
# (one thread) at batch 8: a QM9 step costs 0.21 s (Equiformer), 0.31 s (EST-GA), 0.71 s
# (pure EST default) and 0.64 s (pure EST paper); an oxides step 0.13-0.17 s (EquiformerV2,
# EST default) and 0.15-0.21 s (EST paper mix). On U0, Equiformer stays at the
# element-reference baseline for its first ~500 steps, so QM9 gets 1,500 steps: 1,000
# training molecules x 12 epochs, a very-low-data, short-training regime (the paper: 110k
# molecules x 300 epochs).
SIZES = {
    "small": Size(qm9_train=1_000, qm9_val=200, qm9_test=1_000, qm9_epochs=12, qm9_batch=8,
                  oxide_epochs=60, oxide_batch=8, oxide_backbone={}, large_models=False),
    "large": Size(qm9_train=None, qm9_val=None, qm9_test=None, qm9_epochs=30, qm9_batch=64,
                  oxide_epochs=200, oxide_batch=8,
                  oxide_backbone={"num_layers": 4, "sphere_channels": 64, "lmax_list": [4],
                                  "mmax_list": [2], "ffn_hidden_channels": 64,
                                  "attn_hidden_channels": 32},
                  large_models=True),
}


def _yaml(path: str) -> dict:
    import yaml

    return yaml.safe_load((REPO / path).read_text())


def model_section(model: Model, size: Size, backbone_overrides: dict | None = None) -> dict:
    """The ``model:`` section: the model file's, with its backbone and est: block replaced."""
    section = copy.deepcopy(_yaml(model.large if size.large_models else model.base)["model"])
    backbone = section["backbone"]
    if model.backbone is not None:
        backbone["model"] = model.backbone
    backbone.pop("est", None)
    if model.est is not None:
        backbone["est"] = copy.deepcopy(model.est)
        if backbone["model"] == "equiformer_v2_backbone":
            backbone["model"] = "est_fairchem.models.EquiformerV2ESTBackbone"
    backbone.update(backbone_overrides or {})
    return section


def _optim(batch: int, epochs: int, steps_per_epoch: int) -> dict[str, Any]:
    """AdamW with a cosine schedule over the whole run (fairchem's ocp trainer steps torch's
    CosineAnnealingLR once per step, so T_max is the run's steps); validated 6 times a run."""
    steps = epochs * steps_per_epoch
    return {"optim": {
        "batch_size": batch, "eval_batch_size": 64, "num_workers": 0,
        "lr_initial": 1e-3, "optimizer": "AdamW", "optimizer_params": {"weight_decay": 0.0},
        "scheduler": "CosineAnnealingLR", "T_max": steps, "eta_min": 1e-5,
        "max_epochs": epochs, "eval_every": max(1, steps // 6), "clip_grad_norm": 100,
        "ema_decay": None,
    }}


def qm9_config(model: Model, target: Target, size: Size, qm9: Path, epochs: int,
               split: str = "val") -> dict:
    """A QM9 training config; ``split='test'`` points its val split at the test LMDB."""
    config = {"includes": [str(REPO / "configs/qm9/base/task.yml"), str(REPO / target.config)]}
    train = {"format": "est_fairchem.data.CheckedLmdbDataset", "src": str(qm9 / "train")}
    if size.qm9_train is not None:
        train["first_n"] = size.qm9_train
    if target.metric == "homo_mae":  # standardised, as configs/qm9/targets/homo.yml says
        train["transforms"] = {"normalizer": {"fit": {"targets": {"homo": {}}, "batch_size": 1024}}}
    else:  # U0: per-element linear references, then standardised, both fitted on train
        train["transforms"] = {
            "element_references": {"fit": {"targets": ["u0_atomization"], "batch_size": 1024}},
            "normalizer": {"fit": {"targets": {"u0_atomization": {}}, "batch_size": 1024}},
        }
    val_size = size.qm9_test if split == "test" else size.qm9_val
    val = {"src": str(qm9 / split)}
    if val_size is not None:
        val["first_n"] = val_size
    config["dataset"] = {"train": train, "val": val}
    config["model"] = model_section(model, size)
    train_size = size.qm9_train or 110_000
    config.update(_optim(size.qm9_batch, epochs, -(-train_size // size.qm9_batch)))
    return config


def oxide_config(model: Model, size: Size, epochs: int, split: str = "val") -> dict:
    """An oxides.db training config (fairchem's ase_db format, energies and forces); energies
    referenced per element and standardised, both fitted on the training split."""
    if not OXIDES_DB.exists():
        raise FileNotFoundError(f"{OXIDES_DB}: expected the fairchem tutorial's oxides.db")
    a2g = {"r_energy": True, "r_forces": True}

    def part(selection: str) -> dict:
        return {"src": str(OXIDES_DB), "select_args": {"selection": selection}, "a2g_args": a2g,
                "keep_in_memory": True}

    train = {"format": "ase_db", **part(OXIDE_SPLITS["train"])}  # val and test inherit it
    train["transforms"] = {
        "element_references": {"fit": {"targets": ["energy"], "batch_size": 64}},
        # forces are near zero (an equation of state): left in eV/A, a consistency term
        "normalizer": {"fit": {"targets": {"energy": {}, "forces": {"mean": 0.0, "stdev": 1.0}},
                               "batch_size": 64}},
    }
    config = {
        "includes": [str(REPO / "configs/oc20/s2ef/base/task.yml")],
        "trainer": "ocp",  # the cosine schedule in steps, as for QM9
        "dataset": {"train": train, "val": part(OXIDE_SPLITS[split])},
        "model": model_section(model, size, {"use_pbc": True, **size.oxide_backbone}),
        "loss_functions": [{"energy": {"fn": "per_atom_mae", "coefficient": 10}},
                           {"forces": {"fn": "l2mae", "coefficient": 1}}],
        "evaluation_metrics": {"metrics": {"energy": ["mae", "per_atom_mae"],
                                           "forces": ["mae"]},
                               "primary_metric": "energy_per_atom_mae"},
    }
    train_rows = _oxide_rows(OXIDE_SPLITS["train"])
    config.update(_optim(size.oxide_batch, epochs, -(-train_rows // size.oxide_batch)))
    return config


def _oxide_rows(selection: str) -> int:
    from ase.db import connect

    return connect(str(OXIDES_DB)).count(selection)
