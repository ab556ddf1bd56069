"""A comparison study: a dataset config, model configs, and the fairchem configs of every run.

The dataset config is any fairchem config with ``dataset: {train, val, test}`` and the task
(``trainer``, ``outputs``, ``loss_functions``, ``evaluation_metrics``, normalizers...); each
model file holds a ``model:`` section, which replaces the dataset config's. A run's config is
the two joined, plus what the study fixes for every model alike:

- the training set: ``train_size`` structures drawn from the train split with the run's seed
  (fairchem's ``train_split_settings: {sample_n, seed}``), so a seed draws the data, the
  initialisation and the batch order, the same within a seed for every model;
- the graph statistics: every ``avg_num_nodes`` / ``avg_degree`` the model file sets is
  replaced by the value measured on the train split with that model's own graph
  (:mod:`est_fairchem.tools.graph_stats`);
- the schedule: AdamW, cosine from the run's learning rate to 1 % of it over exactly
  ``steps`` optimizer steps (``optim.max_steps`` of the package's trainers), validated
  ``evaluations`` times.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from est_fairchem.errors import InputError

# fairchem trainer name -> this package's trainer with optim.max_steps (same task and loop)
TRAINERS = {
    "ocp": "est_fairchem.trainers.PreemptibleOCPTrainer",
    "equiformerv2_forces": "est_fairchem.trainers.PreemptibleForcesTrainer",
}


@dataclass(frozen=True)
class Study:
    """What a comparison holds fixed; stored as ``study.json`` in the results folder."""

    data: str  # the dataset config
    models: dict[str, str]  # name -> model file; the first is the baseline
    seeds: list[int]
    steps: int  # optimizer steps of a run at equal steps
    batch_size: int
    train_size: int | None  # structures drawn per seed from the train split (None: all)
    lrs: list[float]  # swept per model on the validation split; one value: no sweep
    sweep_seed: int = 1000  # the sweep's seed, none of the evaluation seeds
    evaluations: int = 6  # validations per run
    equal_time: bool = True  # also runs at the baseline's training time
    # no time run for a model whose equal-time steps are within this fraction of ``steps``
    # (its steps run is the time run within the timing's own spread)
    same_time: float = 0.02
    long_factor: int = 0  # convergence runs: steps x this (0: none)
    long_seeds: list[int] = field(default_factory=list)
    long_models: list[str] = field(default_factory=list)
    model_seeds: dict[str, int] = field(default_factory=dict)  # name -> at most this many seeds
    pairs: list[list[str]] = field(default_factory=list)  # [model, reference] beside the baseline
    later: list[str] = field(default_factory=list)  # models whose runs wait for all the others'

    @property
    def baseline(self) -> str:
        return next(iter(self.models))

    def seeds_of(self, model: str) -> list[int]:
        """The evaluation seeds ``model`` runs (its first ``model_seeds[model]`` if limited)."""
        return self.seeds[:self.model_seeds.get(model, len(self.seeds))]

    def references(self, model: str) -> list[str]:
        """The models ``model`` is compared with: the baseline, and its ``pairs`` partners."""
        out = [self.baseline] if model != self.baseline else []
        return out + [ref for m, ref in self.pairs if m == model and ref not in out]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_study(study: Study) -> None:
    """Refuse what cannot run, naming the value (before any work)."""
    if len(study.models) < 2:
        raise InputError("a comparison needs at least two model configs (the first is the "
                         "baseline)")
    for name, path in [("dataset config", study.data), *study.models.items()]:
        if not Path(path).is_file():
            raise InputError(f"{path}: no such file ({name})")
    if not 0 <= study.same_time < 1:
        raise InputError(f"same time {study.same_time}: expected a fraction in [0, 1)")
    for key in ("steps", "batch_size", "evaluations"):
        if getattr(study, key) < 1:
            raise InputError(f"{key} {getattr(study, key)}: expected a positive integer")
    if study.train_size is not None and study.train_size < study.batch_size:
        raise InputError(f"train size {study.train_size} is smaller than the batch size "
                         f"{study.batch_size}")
    if not study.lrs or any(lr <= 0 for lr in study.lrs):
        raise InputError(f"learning rates {study.lrs}: expected positive values")
    named = set(study.long_models) | set(study.model_seeds) | set(study.later) | {
        m for pair in study.pairs for m in pair}
    unknown = named - set(study.models)
    if unknown:
        raise InputError(f"models {sorted(unknown)} (long runs, seed limits, pairs or later) are not "
                         f"among the models {list(study.models)}")
    if any(len(pair) != 2 for pair in study.pairs):
        raise InputError(f"pairs {study.pairs}: expected MODEL:REFERENCE each")
    if study.sweep_seed in study.seeds and len(study.lrs) > 1:
        raise InputError(f"the sweep seed {study.sweep_seed} is also an evaluation seed: the "
                         "learning rate would be chosen on the runs it is judged by")


def load_study(path: Path) -> Study:
    return Study(**json.loads(path.read_text()))


def resumable(saved: Study, new: Study) -> list[str]:
    """What differs between a results folder's ``study.json`` and this command, apart from
    what only adds or selects runs (seeds, seed limits, long runs, pairs): a resumed study
    must measure the same thing."""
    keep = {"seeds", "long_seeds", "long_factor", "long_models", "model_seeds", "pairs", "later",
            "same_time"}
    return [key for key, value in saved.to_json().items()
            if key not in keep and new.to_json()[key] != value]


def _fairchem_config(path: str | Path) -> dict[str, Any]:
    from fairchem.core.common.utils import load_config

    config, _, errors = load_config(str(path))
    if errors:
        raise InputError(f"{path}: conflicting keys in included configs: {errors}")
    return config


def data_config(study: Study) -> dict[str, Any]:
    """The dataset config with its includes resolved, checked for the three splits."""
    config = _fairchem_config(study.data)
    splits = config.get("dataset")
    if not isinstance(splits, dict) or not {"train", "val", "test"} <= set(splits):
        raise InputError(f"{study.data}: expected 'dataset:' with train, val and test splits "
                         "(the test split gives the reported error)")
    trainer = config.get("trainer", "ocp")
    if trainer not in TRAINERS and trainer not in TRAINERS.values():
        raise InputError(f"{study.data}: trainer {trainer!r}: the comparison needs one of "
                         f"{sorted(TRAINERS)} (it trains a fixed number of steps)")
    return config


def model_section(study: Study, name: str) -> dict[str, Any]:
    config = _fairchem_config(study.models[name])
    if not isinstance(config.get("model"), dict):
        raise InputError(f"{study.models[name]}: expected a 'model:' section")
    return config["model"]


def with_graph_statistics(model: dict[str, Any], values: dict[str, float],
                          source: str) -> dict[str, Any]:
    """``model`` with every ``avg_num_nodes`` / ``avg_degree`` key set to ``values``; a model
    that sets neither is refused (its class defaults come from some other dataset)."""
    found = []

    def fill(section: Any) -> None:
        if isinstance(section, dict):
            for key in section:
                if key in values and isinstance(section[key], (int, float)):
                    section[key] = values[key]
                    found.append(key)
                else:
                    fill(section[key])

    model = copy.deepcopy(model)
    fill(model)
    if not found:
        raise InputError(f"{source}: sets neither avg_num_nodes nor avg_degree; name them (any "
                         "value) where the model takes them, and the comparison fills in the "
                         "data's values")
    return model


def optim_section(base: dict[str, Any], lr: float, steps: int, batch_size: int,
                  evaluations: int) -> dict[str, Any]:
    """The dataset config's ``optim`` with the study's schedule: AdamW, cosine to lr/100 over
    exactly ``steps`` steps, ``evaluations`` validations; other keys are kept."""
    optim = copy.deepcopy(base)
    optim.update({
        "batch_size": batch_size, "lr_initial": lr, "max_steps": steps, "max_epochs": 1,
        "optimizer": optim.get("optimizer", "AdamW"),
        "optimizer_params": optim.get("optimizer_params", {"weight_decay": 0.0}),
        "scheduler": "CosineAnnealingLR", "T_max": steps, "eta_min": lr / 100,
        "eval_every": max(1, steps // evaluations), "checkpoint_every": -1,
        "num_workers": optim.get("num_workers", 0),
        "eval_batch_size": optim.get("eval_batch_size", 64),
        "clip_grad_norm": optim.get("clip_grad_norm", 100),
        "ema_decay": optim.get("ema_decay"),
    })
    optim.pop("scheduler_params", None)
    return optim


@dataclass(frozen=True)
class Run:
    """One training run of the study."""

    protocol: str  # sweep | steps | time | long
    model: str
    seed: int
    steps: int
    lr: float

    @property
    def name(self) -> str:
        lr = f"-lr{self.lr:g}" if self.protocol == "sweep" else ""
        return f"{self.protocol}-{self.model}{lr}-seed{self.seed}"


def run_config(study: Study, run: Run, data: dict[str, Any], model: dict[str, Any],
               split: str = "val") -> dict[str, Any]:
    """The fairchem config of ``run`` (train, validate on ``val``; no test split), or for
    its evaluation on the test split: ``split='validate'``, the test split as fairchem's val
    (``--mode validate``); ``split='predict'``, the test split alone (``--mode predict``).
    fairchem's LMDB dataset opens a file once per process, so no config names it twice."""
    config = copy.deepcopy(data)
    config.pop("includes", None)
    config["model"] = copy.deepcopy(model)
    config["trainer"] = TRAINERS.get(config.get("trainer", "ocp"), config.get("trainer"))
    if study.train_size is not None:  # fairchem copies the train split's own keys into val
        train = config["dataset"]["train"]  # and test, so the draw goes in its split settings
        for key in ("first_n", "sample_n", "no_shuffle", "seed"):
            train.pop(key, None)
        train["train_split_settings"] = {"sample_n": study.train_size, "seed": run.seed}
    if split == "validate":
        config["dataset"]["val"] = config["dataset"].pop("test")
    elif split == "predict":
        config["dataset"].pop("val")
    else:  # training: the test split is evaluated once, from the best checkpoint, not by
        config["dataset"].pop("test")  # fairchem at every improvement of validation
    evaluations = study.evaluations * (4 if run.protocol == "long" else 1)
    config["optim"] = optim_section(config.get("optim", {}), run.lr, run.steps,
                                    study.batch_size, evaluations)
    return config
